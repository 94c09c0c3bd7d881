// CZeroMQ: libzmq's C API (Debian's libzmq3-dev installs /usr/include/zmq.h).
#include <zmq.h>
