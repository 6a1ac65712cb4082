// ldns declares its booleans with C99 bool: without <stdbool.h> first they import as Int8.
#include <stdbool.h>
#include <ldns/ldns.h>
