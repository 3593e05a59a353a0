#include "rfn.h"

int
rfn_diff_exec(PyObject *module)
{
    (void)module;
    return 0;
}
