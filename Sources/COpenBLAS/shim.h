// COpenBLAS: the CBLAS interface of OpenBLAS (Debian's libopenblas-dev puts cblas.h on the default include path;
// it also declares openblas_set_num_threads, used to size the BLAS thread pool per process).
#include <cblas.h>
