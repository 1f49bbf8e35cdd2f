/*
 * probe: a WASI test app that reports what it sees, or misbehaves on request.
 *
 *   probe report            write report.txt: args, selected env, clock, random, and whether
 *                           the input directory can be written to and read from
 *   probe exit N            exit with status N
 *   probe spam N            write N bytes to stdout
 *   probe computed TEXT     write TEXT as computed.json (and a result.txt)
 *   probe symlink           put a symbolic link in the output
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *ENV[] = {"IEXEC_IN", "IEXEC_OUT", "IEXEC_TASK_ID", "DECLOUD_TASK_ID", "HOME", "PATH"};

static int report(int argc, char **argv) {
    FILE *out = fopen("/iexec_out/report.txt", "w");
    if (!out) return 10;
    for (int i = 0; i < argc; i++) fprintf(out, "argv[%d]=%s\n", i, argv[i]);
    for (size_t i = 0; i < sizeof ENV / sizeof *ENV; i++) {
        const char *value = getenv(ENV[i]);
        fprintf(out, "%s=%s\n", ENV[i], value ? value : "(unset)");
    }
    struct timespec a, b;
    clock_gettime(CLOCK_REALTIME, &a);
    clock_gettime(CLOCK_MONOTONIC, &b);
    fprintf(out, "realtime=%lld.%09ld monotonic=%lld.%09ld\n", (long long)a.tv_sec, a.tv_nsec,
            (long long)b.tv_sec, b.tv_nsec);
    unsigned char random[8];
    if (getentropy(random, sizeof random)) return 11;
    fprintf(out, "random=");
    for (size_t i = 0; i < sizeof random; i++) fprintf(out, "%02x", random[i]);
    fprintf(out, "\n");
    FILE *in = fopen("/iexec_in/written-by-app", "w");
    fprintf(out, "input writable=%s\n", in ? "yes" : "no");
    char line[128] = "";
    FILE *data = fopen("/iexec_in/data.txt", "r");
    if (data && fgets(line, sizeof line, data)) fprintf(out, "input data=%s", line);
    return fclose(out) ? 12 : 0;
}

static int spam(long n) {
    char block[1024];
    memset(block, 'x', sizeof block);
    for (; n > 0; n -= (long)sizeof block)
        fwrite(block, 1, n < (long)sizeof block ? (size_t)n : sizeof block, stdout);
    return 0;
}

static int computed(const char *text) {
    FILE *result = fopen("/iexec_out/result.txt", "w");
    FILE *json = fopen("/iexec_out/computed.json", "w");
    if (!result || !json) return 10;
    fputs("result\n", result);
    fputs(text, json);
    return fclose(result) || fclose(json) ? 12 : 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "report")) return report(argc, argv);
    if (argc == 3 && !strcmp(argv[1], "exit")) return atoi(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "spam")) return spam(atol(argv[2]));
    if (argc == 3 && !strcmp(argv[1], "computed")) return computed(argv[2]);
    if (argc == 2 && !strcmp(argv[1], "symlink")) {
        if (computed("{}")) return 10;
        return symlink("result.txt", "/iexec_out/link.txt") ? 13 : 0;
    }
    fprintf(stderr, "probe: unknown mode\n");
    return 64;
}
