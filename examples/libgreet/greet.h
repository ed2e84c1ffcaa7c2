#ifndef GREET_H
#define GREET_H
/* Writes a greeting for `name` to stdout. */
void greet(const char *name);
#endif
