/* PCRE2 with 8-bit code units: command lines are bytes. The API's names are macros over
   the width-suffixed functions (pcre2_compile_8 ...), which are what Swift sees. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
