#include <stdio.h>
#include "greet.h"

void greet(const char *name) {
  printf("hello from libgreet, %s\n", name);
}
