#include "cguest.h"
