#include "rfn.h"

int
rfn_walk_exec(PyObject *module)
{
    (void)module;
    return 0;
}
