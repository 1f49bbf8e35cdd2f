/*
 * mandelbrot: renders the Mandelbrot set to $IEXEC_OUT/mandelbrot.ppm, a decloud sample app.
 *
 *   app [WIDTH [HEIGHT [MAX_ITER [CENTER_RE CENTER_IM [ZOOM]]]]]
 *
 * Defaults: 256 x 256 pixels, 256 iterations, centred on -0.5 + 0i, zoom 1 (the whole set
 * fits the height). The image is a binary PPM (P6); computed.json names it as the
 * deterministic output, so replicates agree on its sha256.
 *
 * Deterministic by construction: IEEE double arithmetic only (WebAssembly has no fused
 * multiply-add, so every engine rounds the same), no clock, no randomness, and the image is
 * written row by row in a fixed order.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIDE 16384

struct view {
    long width, height, max_iter;
    double center_re, center_im, zoom;
};

static int parse_long(const char *text, long low, long high, long *out) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || *end || end == text || value < low || value > high) return -1;
    *out = value;
    return 0;
}

static int parse_double(const char *text, double *out) {
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno || *end || end == text || value != value) return -1;
    *out = value;
    return 0;
}

static int parse_view(int argc, char **argv, struct view *view) {
    *view = (struct view){256, 256, 256, -0.5, 0.0, 1.0};
    if (argc > 7) return -1;
    if (argc > 1 && parse_long(argv[1], 1, MAX_SIDE, &view->width)) return -1;
    if (argc > 2 && parse_long(argv[2], 1, MAX_SIDE, &view->height)) return -1;
    if (argc > 3 && parse_long(argv[3], 1, 1000000, &view->max_iter)) return -1;
    if (argc == 5) return -1; /* a centre needs both coordinates */
    if (argc > 5 && (parse_double(argv[4], &view->center_re) || parse_double(argv[5], &view->center_im)))
        return -1;
    if (argc > 6 && (parse_double(argv[6], &view->zoom) || !(view->zoom > 0))) return -1;
    return 0;
}

/* Iterations before the orbit of c escapes the radius-2 disc, or max_iter if it never does. */
static long escape_time(double c_re, double c_im, long max_iter) {
    double re = 0, im = 0;
    long n = 0;
    while (n < max_iter && re * re + im * im <= 4.0) {
        double next_re = re * re - im * im + c_re;
        im = 2 * re * im + c_im;
        re = next_re;
        n++;
    }
    return n;
}

/* Points of the set are black; the others cycle through a smooth integer palette. */
static void colour(long n, long max_iter, unsigned char rgb[3]) {
    if (n >= max_iter) {
        rgb[0] = rgb[1] = rgb[2] = 0;
        return;
    }
    unsigned t = (unsigned)(n * 7 % 256);
    rgb[0] = (unsigned char)(t);
    rgb[1] = (unsigned char)(t * 3 % 256);
    rgb[2] = (unsigned char)(255 - t);
}

static int render(const struct view *view, FILE *image, unsigned long long *total) {
    unsigned char *row = malloc((size_t)view->width * 3);
    if (!row) return -1;
    double scale = 3.0 / (view->zoom * (double)view->height); /* units per pixel */
    fprintf(image, "P6\n%ld %ld\n255\n", view->width, view->height);
    for (long y = 0; y < view->height; y++) {
        double c_im = view->center_im + ((double)view->height / 2 - (double)y) * scale;
        for (long x = 0; x < view->width; x++) {
            double c_re = view->center_re + ((double)x - (double)view->width / 2) * scale;
            long n = escape_time(c_re, c_im, view->max_iter);
            *total += (unsigned long long)n;
            colour(n, view->max_iter, row + 3 * x);
        }
        if (fwrite(row, 3, (size_t)view->width, image) != (size_t)view->width) {
            free(row);
            return -1;
        }
    }
    free(row);
    return 0;
}

static int write_computed(const char *out_dir, const char *image_path) {
    char path[4096];
    snprintf(path, sizeof path, "%s/computed.json", out_dir);
    FILE *file = fopen(path, "w");
    if (!file) return -1;
    fprintf(file, "{\"deterministic-output-path\": \"%s\"}\n", image_path);
    return fclose(file);
}

int main(int argc, char **argv) {
    struct view view;
    if (parse_view(argc, argv, &view)) {
        fprintf(stderr,
                "usage: %s [WIDTH [HEIGHT [MAX_ITER [CENTER_RE CENTER_IM [ZOOM]]]]]\n"
                "  WIDTH, HEIGHT in 1..%d, MAX_ITER in 1..1000000, ZOOM > 0\n",
                argv[0], MAX_SIDE);
        return 2;
    }
    const char *out_dir = getenv("IEXEC_OUT");
    if (!out_dir) {
        fprintf(stderr, "IEXEC_OUT is not set: run me as a decloud (or iExec) app\n");
        return 3;
    }
    char image_path[4096];
    snprintf(image_path, sizeof image_path, "%s/mandelbrot.ppm", out_dir);
    FILE *image = fopen(image_path, "wb");
    if (!image) {
        fprintf(stderr, "cannot create %s: %s\n", image_path, strerror(errno));
        return 4;
    }
    unsigned long long total = 0;
    if (render(&view, image, &total) || fclose(image)) {
        fprintf(stderr, "cannot write %s: %s\n", image_path, strerror(errno));
        return 4;
    }
    if (write_computed(out_dir, image_path)) {
        fprintf(stderr, "cannot write computed.json in %s: %s\n", out_dir, strerror(errno));
        return 4;
    }
    printf("rendered %ldx%ld pixels, %llu iterations, into %s\n", view.width, view.height,
           total, image_path);
    return 0;
}
