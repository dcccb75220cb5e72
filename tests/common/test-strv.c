/* SPDX-License-Identifier: MIT */
#undef NDEBUG
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/strv.h"

static void test_split(void) {
        _cleanup_strv_free_ char **l = NULL;

        assert(strv_split_list("a, b,,c\t d\r\n e ,", &l) == 0);
        assert(strv_length(l) == 5);
        assert(streq(l[0], "a") && streq(l[1], "b") && streq(l[2], "c") && streq(l[3], "d") &&
               streq(l[4], "e"));
        assert(!l[5]);
        l = strv_free(l);

        assert(strv_split_list("", &l) == 0);
        assert(l && strv_length(l) == 0);
        l = strv_free(l);
        assert(strv_split_list(" , ,\t", &l) == 0);
        assert(l && strv_length(l) == 0);
        l = strv_free(l);
        assert(strv_split_list("single", &l) == 0);
        assert(strv_length(l) == 1 && streq(l[0], "single"));
}

static void test_build(void) {
        _cleanup_strv_free_ char **l = NULL;

        assert(strv_length(NULL) == 0);
        assert(!strv_contains(NULL, "x"));
        assert(strv_extend(&l, "One") == 0);
        assert(strv_push(&l, strdup("two")) == 0);
        assert(strv_length(l) == 2);
        assert(strv_contains(l, "One") && !strv_contains(l, "one"));
        assert(strv_contains_case(l, "one") && strv_contains_case(l, "TWO"));
        assert(!strv_contains_case(l, "three"));
        assert(strv_free(NULL) == NULL);
}

static void test_strings(void) {
        char a[] = " \t hello world \r\n";
        assert(streq(strstrip(a), "hello world"));
        char b[] = "   ";
        assert(streq(strstrip(b), ""));
        char c[] = "MiXeD 123";
        assert(streq(ascii_strlower(c), "mixed 123"));
        assert(string_has_cc("a\rb"));
        assert(string_has_cc("a\x7f"));
        assert(!string_has_cc("plain text"));
        assert(!string_has_cc(""));
}

int main(void) {
        test_split();
        test_build();
        test_strings();
        return 0;
}
