/* The report's plots as inline SVG: the feature space, the scores' histogram, the colour
 * bar and the evaluation. Hover texts are SVG <title>s; nothing needs a script. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "pipeline/report.h"

void c3_html_text(c3_outfile *o, const char *s) {
  if (!s) return;
  const char *run = s;
  for (; *s; s++) {
    const char *rep = NULL;
    switch (*s) {
    case '&': rep = "&amp;"; break;
    case '<': rep = "&lt;"; break;
    case '>': rep = "&gt;"; break;
    case '"': rep = "&quot;"; break;
    case '\'': rep = "&#39;"; break;
    default: break;
    }
    if (!rep) continue;
    if (s > run) c3_outfile_write(o, run, (size_t)(s - run));
    c3_outfile_write(o, rep, strlen(rep));
    run = s + 1;
  }
  if (s > run) c3_outfile_write(o, run, (size_t)(s - run));
}

void c3_fmt_digits(char *buf, size_t cap, double v, int digits) {
  if (isnan(v)) snprintf(buf, cap, "-");
  else if (isinf(v)) snprintf(buf, cap, v > 0 ? "inf" : "-inf");
  else snprintf(buf, cap, "%.*g", digits, v);
}

void c3_fmt_value(char *buf, size_t cap, double v) { c3_fmt_digits(buf, cap, v, 4); }

int c3_digits_for(double lo, double hi) {
  double big = fmax(fabs(lo), fabs(hi)), range = hi - lo;
  if (!(range > 0) || !(big > 0)) return 4;
  int d = 3 + (int)ceil(log10(big / range));
  return d < 4 ? 4 : d > 9 ? 9 : d;
}

/* Selections: dark outline colours, and shapes circle, square, diamond, triangle. */
static const char *const c3_sel_colours[] = {"#111111", "#c2185b", "#1565c0", "#2e7d32",
                                             "#ef6c00", "#6a1b9a", "#00838f", "#5d4037"};

const char *c3_sel_colour(int k) { return c3_sel_colours[k % 8]; }

void c3_svg_marker(c3_outfile *o, int k, double x, double y, double r) {
  const char *c = c3_sel_colour(k);
  switch (k % 4) {
  case 0:
    c3_outfile_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"none\" "
                      "stroke=\"%s\" stroke-width=\"2\"/>", x, y, r, c);
    break;
  case 1:
    c3_outfile_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                      "fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>", x - r * 0.9,
                      y - r * 0.9, r * 1.8, r * 1.8, c);
    break;
  case 2:
    c3_outfile_printf(o, "<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" fill=\"none\" "
                      "stroke=\"%s\" stroke-width=\"2\"/>", x, y - r * 1.25, x + r * 1.25, y,
                      x, y + r * 1.25, x - r * 1.25, y, c);
    break;
  default:
    c3_outfile_printf(o, "<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" fill=\"none\" "
                      "stroke=\"%s\" stroke-width=\"2\"/>", x, y - r * 1.3, x + r * 1.15,
                      y + r * 0.75, x - r * 1.15, y + r * 0.75, c);
    break;
  }
}

/* About `want` round tick values (1, 2 or 5 times a power of ten) in [lo, hi]. */
static int c3_ticks(double lo, double hi, int want, double *t, int cap) {
  if (!(hi > lo)) {
    t[0] = lo;
    return 1;
  }
  double raw = (hi - lo) / want, p = pow(10, floor(log10(raw))), m = raw / p;
  double step = (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  int n = 0;
  for (double v = ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9 && n < cap; v += step)
    t[n++] = fabs(v) < step * 1e-9 ? 0 : v;
  return n;
}

/* The text of a tick (as short as it can be). */
static void c3_tick_text(char *buf, size_t cap, double v) { snprintf(buf, cap, "%.6g", v); }

/* The hover text of case i: id, score, cluster, typicality. */
static void c3_point_title(c3_outfile *o, const c3_report_points *pt, int64_t i) {
  char sc[32], ty[32];
  c3_fmt_digits(sc, sizeof sc, pt->score[i], pt->digits);
  c3_fmt_value(ty, sizeof ty, pt->typ ? pt->typ[i] : NAN);
  c3_outfile_printf(o, "<title>");
  c3_html_text(o, pt->id[i]);
  int64_t k = pt->cluster ? pt->cluster[i] : -1;
  if (k >= 0) c3_outfile_printf(o, "\nscore %s\ncluster %" PRId64 "\ntypicality %s", sc, k, ty);
  else c3_outfile_printf(o, "\nscore %s\ncluster -\ntypicality -", sc);
}

/* Axis frame, ticks and labels of a plot area [x0, x1] x [y0, y1]; `sx`, `sy` map data to
 * pixels as x0 + (v - dx) * kx. */
typedef struct c3_axes {
  double x0, x1, y0, y1; /* pixels */
  double dx0, dx1, dy0, dy1; /* data */
} c3_axes;

static double c3_px(const c3_axes *a, double v) {
  return a->x0 + (v - a->dx0) / (a->dx1 - a->dx0) * (a->x1 - a->x0);
}
static double c3_py(const c3_axes *a, double v) {
  return a->y1 - (v - a->dy0) / (a->dy1 - a->dy0) * (a->y1 - a->y0);
}

static void c3_svg_axes(c3_outfile *o, const c3_axes *a, const char *xlabel,
                        const char *ylabel, int yticks) {
  c3_outfile_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                    "fill=\"#fff\" stroke=\"#888\"/>", a->x0, a->y0, a->x1 - a->x0,
                    a->y1 - a->y0);
  double t[32];
  char buf[48];
  int n = c3_ticks(a->dx0, a->dx1, 6, t, 32);
  for (int i = 0; i < n; i++) {
    double x = c3_px(a, t[i]);
    c3_tick_text(buf, sizeof buf, t[i]);
    c3_outfile_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                      "stroke=\"#888\"/><text x=\"%.1f\" y=\"%.1f\" class=\"tk\" "
                      "text-anchor=\"middle\">%s</text>", x, a->y1, x, a->y1 + 4, x,
                      a->y1 + 16, buf);
  }
  if (yticks) {
    n = c3_ticks(a->dy0, a->dy1, 5, t, 32);
    for (int i = 0; i < n; i++) {
      double y = c3_py(a, t[i]);
      c3_tick_text(buf, sizeof buf, t[i]);
      c3_outfile_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                        "stroke=\"#888\"/><text x=\"%.1f\" y=\"%.1f\" class=\"tk\" "
                        "text-anchor=\"end\">%s</text>", a->x0 - 4, y, a->x0, y, a->x0 - 6,
                        y + 4, buf);
    }
  }
  c3_outfile_printf(o, "<text x=\"%.1f\" y=\"%.1f\" class=\"lb\" text-anchor=\"middle\">",
                    (a->x0 + a->x1) / 2, a->y1 + 34);
  c3_html_text(o, xlabel);
  c3_outfile_printf(o, "</text>");
  if (ylabel) {
    c3_outfile_printf(o, "<text class=\"lb\" text-anchor=\"middle\" transform=\"translate"
                      "(%.1f %.1f) rotate(-90)\">", a->x0 - 44, (a->y0 + a->y1) / 2);
    c3_html_text(o, ylabel);
    c3_outfile_printf(o, "</text>");
  }
}

void c3_svg_scatter(c3_outfile *o, const c3_report_points *pt, const c3_report_sel *sel,
                    int n_sel) {
  const double W = 760, H = 560;
  c3_axes a = {70, W - 20, 16, H - 50, 0, 0, 0, 0};
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  for (int64_t i = 0; i < pt->n; i++) {
    if (!pt->drawn[i]) continue;
    double x = pt->xy[2 * i], y = pt->xy[2 * i + 1];
    xmin = x < xmin ? x : xmin, xmax = x > xmax ? x : xmax;
    ymin = y < ymin ? y : ymin, ymax = y > ymax ? y : ymax;
  }
  if (!(xmax >= xmin)) xmin = -1, xmax = 1, ymin = -1, ymax = 1;
  /* one scale on both axes (distances are the features'), centred, 5% margins */
  double xr = xmax - xmin, yr = ymax - ymin, pw = a.x1 - a.x0, ph = a.y1 - a.y0;
  if (xr <= 0 && yr <= 0) xr = yr = 1;
  double k = fmin(xr > 0 ? pw / xr : INFINITY, yr > 0 ? ph / yr : INFINITY) / 1.1;
  double cx = (xmin + xmax) / 2, cy = (ymin + ymax) / 2;
  a.dx0 = cx - pw / 2 / k, a.dx1 = cx + pw / 2 / k;
  a.dy0 = cy - ph / 2 / k, a.dy1 = cy + ph / 2 / k;
  c3_outfile_printf(o, "<svg class=\"plot\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
                    "height=\"%.0f\" role=\"img\" aria-label=\"feature space\">", W, H, W, H);
  char xl[96], yl[96];
  snprintf(xl, sizeof xl, "PC1 (%.1f%% of the variance)", 100 * pt->frac[0]);
  snprintf(yl, sizeof yl, "PC2 (%.1f%% of the variance)", 100 * pt->frac[1]);
  c3_svg_axes(o, &a, xl, yl, 1);
  /* every drawn case as a dot in its cluster's colour (classes k0, k1, ... and kn) */
  c3_outfile_printf(o, "<g class=\"pts\">");
  for (int pass = 0; pass < 2; pass++) /* unchosen first, chosen on top */
    for (int64_t i = 0; i < pt->n; i++) {
      if (pt->drawn[i] != pass + 1) continue;
      int64_t kc = pt->cluster ? pt->cluster[i] : -1;
      char cls[32];
      if (kc >= 0) snprintf(cls, sizeof cls, "k%" PRId64, kc);
      else snprintf(cls, sizeof cls, "kn");
      c3_outfile_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%s\" class=\"%s\">",
                        c3_px(&a, pt->xy[2 * i]), c3_py(&a, pt->xy[2 * i + 1]),
                        pass ? "4.5" : "3", cls);
      c3_point_title(o, pt, i);
      for (int s = 0; s < n_sel; s++)
        for (int64_t r = 0; r < sel[s].count; r++)
          if (sel[s].index[r] == i) {
            c3_outfile_printf(o, "\nchosen by ");
            c3_html_text(o, sel[s].strategy);
            c3_outfile_printf(o, " (selection %d), rank %" PRId64 ", rule ", s + 1, r + 1);
            c3_html_text(o, sel[s].rule[r]);
          }
      c3_outfile_printf(o, "</title></circle>\n");
    }
  c3_outfile_printf(o, "</g>");
  /* the chosen cases: the selection's marker and the rank beside it */
  for (int s = 0; s < n_sel; s++) {
    c3_outfile_printf(o, "<g>");
    for (int64_t r = 0; r < sel[s].count; r++) {
      int64_t i = sel[s].index[r];
      double x = c3_px(&a, pt->xy[2 * i]), y = c3_py(&a, pt->xy[2 * i + 1]);
      c3_svg_marker(o, s, x, y, 7 + 2.5 * (s / 4));
      double dx = 8 + 2.5 * (s / 4), dy = (s % 2 ? 12 : -5);
      c3_outfile_printf(o, "<text x=\"%.1f\" y=\"%.1f\" class=\"rk\" fill=\"%s\">%" PRId64
                        "</text>\n", x + dx, y + dy, c3_sel_colour(s), r + 1);
    }
    c3_outfile_printf(o, "</g>");
  }
  c3_outfile_printf(o, "</svg>\n");
}

void c3_svg_histogram(c3_outfile *o, const c3_report_points *pt, const c3_report_sel *sel,
                      int n_sel) {
  double lo = INFINITY, hi = -INFINITY;
  for (int64_t i = 0; i < pt->n; i++) {
    lo = pt->score[i] < lo ? pt->score[i] : lo;
    hi = pt->score[i] > hi ? pt->score[i] : hi;
  }
  if (!(hi > lo)) lo -= 0.5 * (fabs(lo) + 1e-3), hi += 0.5 * (fabs(hi) + 1e-3);
  int bins = (int)sqrt((double)pt->n);
  bins = bins < 10 ? 10 : bins > 40 ? 40 : bins;
  int64_t count[40] = {0}, top = 1;
  for (int64_t i = 0; i < pt->n; i++) {
    int b = (int)((pt->score[i] - lo) / (hi - lo) * bins);
    b = b < 0 ? 0 : b >= bins ? bins - 1 : b;
    count[b]++;
  }
  for (int b = 0; b < bins; b++) top = count[b] > top ? count[b] : top;
  const double W = 760, row = 18, H0 = 230;
  double H = H0 + 58 + row * n_sel;
  c3_axes a = {70, W - 20, 12, H0, lo, hi, 0, (double)top * 1.08};
  c3_outfile_printf(o, "<svg class=\"plot\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
                    "height=\"%.0f\" role=\"img\" aria-label=\"scores\">", W, H, W, H);
  c3_svg_axes(o, &a, "uncertainty score", "cases", 1);
  double bw = (a.x1 - a.x0) / bins;
  for (int b = 0; b < bins; b++) {
    if (!count[b]) continue;
    double y = c3_py(&a, (double)count[b]);
    char l[32], r[32];
    c3_fmt_digits(l, sizeof l, lo + (hi - lo) * b / bins, pt->digits);
    c3_fmt_digits(r, sizeof r, lo + (hi - lo) * (b + 1) / bins, pt->digits);
    c3_outfile_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                      "class=\"bar\"><title>%s to %s: %" PRId64 " case%s</title></rect>\n",
                      a.x0 + b * bw + 0.5, y, bw - 1, a.y1 - y, l, r, count[b],
                      count[b] == 1 ? "" : "s");
  }
  /* one row per selection under the axis: a marker at each chosen case's score */
  for (int s = 0; s < n_sel; s++) {
    double y = H0 + 52 + row * s;
    c3_outfile_printf(o, "<text x=\"%.1f\" y=\"%.1f\" class=\"tk\" text-anchor=\"end\">",
                      a.x0 - 8, y + 4);
    c3_html_text(o, sel[s].strategy);
    c3_outfile_printf(o, "</text><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                      "stroke=\"#ddd\"/>", a.x0, y, a.x1, y);
    for (int64_t r = 0; r < sel[s].count; r++) {
      int64_t i = sel[s].index[r];
      double x = c3_px(&a, pt->score[i]);
      char sc[32];
      c3_fmt_digits(sc, sizeof sc, pt->score[i], pt->digits);
      c3_outfile_printf(o, "<g>");
      c3_svg_marker(o, s, x, y, 5);
      c3_outfile_printf(o, "<title>");
      c3_html_text(o, sel[s].strategy);
      c3_outfile_printf(o, " rank %" PRId64 ": ", r + 1);
      c3_html_text(o, pt->id[i]);
      c3_outfile_printf(o, ", score %s</title></g>", sc);
    }
  }
  c3_outfile_printf(o, "</svg>\n");
}

void c3_svg_colour_bar(c3_outfile *o, double lo, double hi) {
  const int n = 64;
  const double W = 180;
  c3_outfile_printf(o, "<svg class=\"cbar\" viewBox=\"0 0 %.0f 32\" width=\"%.0f\" "
                    "height=\"32\" role=\"img\" aria-label=\"colour bar\">", W + 20, W + 20);
  for (int i = 0; i < n; i++) {
    uint8_t c[3];
    c3_viridis((i + 0.5) / n, c);
    c3_outfile_printf(o, "<rect x=\"%.2f\" y=\"2\" width=\"%.2f\" height=\"12\" "
                      "fill=\"#%02x%02x%02x\"/>", 10 + W * i / n, W / n + 0.3, c[0], c[1],
                      c[2]);
  }
  char l[32], h[32];
  c3_fmt_value(l, sizeof l, lo);
  c3_fmt_value(h, sizeof h, hi);
  c3_outfile_printf(o, "<text x=\"10\" y=\"28\" class=\"tk\">%s</text><text x=\"%.0f\" "
                    "y=\"28\" class=\"tk\" text-anchor=\"end\">%s</text></svg>", l, W + 10, h);
}

/* ---- evaluation ---- */

static int c3_i64_cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

void c3_svg_evaluation(c3_outfile *o, const c3_eval_run *runs, size_t n) {
  /* strategies in order of appearance, budgets sorted */
  const char *strat[64];
  int ns = 0;
  int64_t bud[256];
  int nb = 0;
  double lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < n; i++) {
    int k = 0;
    while (k < ns && strcmp(strat[k], runs[i].strategy)) k++;
    if (k == ns && ns < 64) strat[ns++] = runs[i].strategy;
    k = 0;
    while (k < nb && bud[k] != runs[i].budget) k++;
    if (k == nb && nb < 256) bud[nb++] = runs[i].budget;
    lo = runs[i].dice < lo ? runs[i].dice : lo;
    hi = runs[i].dice > hi ? runs[i].dice : hi;
  }
  qsort(bud, (size_t)nb, sizeof *bud, c3_i64_cmp);
  double pad = hi > lo ? (hi - lo) * 0.08 : fabs(hi) * 0.05 + 0.01;
  const double W = 760, H = 380;
  c3_axes a = {70, W - 170, 14, H - 50, -0.5, nb - 0.5, lo - pad, hi + pad};
  c3_outfile_printf(o, "<svg class=\"plot\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
                    "height=\"%.0f\" role=\"img\" aria-label=\"evaluation\">", W, H, W, H);
  /* the x axis is categorical: draw the frame and the budgets by hand */
  c3_outfile_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                    "fill=\"#fff\" stroke=\"#888\"/>", a.x0, a.y0, a.x1 - a.x0, a.y1 - a.y0);
  double t[32];
  char buf[48];
  int nt = c3_ticks(a.dy0, a.dy1, 6, t, 32);
  for (int i = 0; i < nt; i++) {
    double y = c3_py(&a, t[i]);
    c3_tick_text(buf, sizeof buf, t[i]);
    c3_outfile_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                      "stroke=\"#eee\"/><text x=\"%.1f\" y=\"%.1f\" class=\"tk\" "
                      "text-anchor=\"end\">%s</text>", a.x0, y, a.x1, y, a.x0 - 6, y + 4, buf);
  }
  for (int b = 0; b < nb; b++)
    c3_outfile_printf(o, "<text x=\"%.1f\" y=\"%.1f\" class=\"tk\" text-anchor=\"middle\">"
                      "%" PRId64 "</text>", c3_px(&a, b), a.y1 + 16, bud[b]);
  c3_outfile_printf(o, "<text x=\"%.1f\" y=\"%.1f\" class=\"lb\" text-anchor=\"middle\">"
                    "budget (labelled cases)</text><text class=\"lb\" text-anchor=\"middle\" "
                    "transform=\"translate(%.1f %.1f) rotate(-90)\">mean Dice</text>",
                    (a.x0 + a.x1) / 2, a.y1 + 34, a.x0 - 50, (a.y0 + a.y1) / 2);
  for (int s = 0; s < ns; s++) {
    char col[8];
    c3_cluster_colour(s, col);
    double dodge = ns > 1 ? (s - (ns - 1) / 2.0) * 0.5 / ns : 0;
    double px_prev = NAN, py_prev = NAN;
    c3_outfile_printf(o, "<g>");
    for (int b = 0; b < nb; b++) {
      double sum = 0, sq = 0;
      int64_t k = 0;
      for (size_t i = 0; i < n; i++)
        if (runs[i].budget == bud[b] && !strcmp(runs[i].strategy, strat[s]))
          sum += runs[i].dice, k++;
      if (!k) continue;
      double mean = sum / (double)k;
      for (size_t i = 0; i < n; i++)
        if (runs[i].budget == bud[b] && !strcmp(runs[i].strategy, strat[s]))
          sq += (runs[i].dice - mean) * (runs[i].dice - mean);
      double sd = k > 1 ? sqrt(sq / (double)(k - 1)) : 0;
      double x = c3_px(&a, b + dodge), y = c3_py(&a, mean);
      if (!isnan(px_prev))
        c3_outfile_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                          "stroke=\"%s\" stroke-width=\"1.5\" stroke-opacity=\"0.6\"/>",
                          px_prev, py_prev, x, y, col);
      px_prev = x, py_prev = y;
      for (size_t i = 0; i < n; i++)
        if (runs[i].budget == bud[b] && !strcmp(runs[i].strategy, strat[s])) {
          c3_outfile_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\" "
                            "fill-opacity=\"0.55\"><title>", x + 7, c3_py(&a, runs[i].dice),
                            col);
          c3_html_text(o, strat[s]);
          if (runs[i].seed >= 0)
            c3_outfile_printf(o, ", budget %" PRId64 ", seed %" PRId64 ": %.4g</title>"
                              "</circle>", bud[b], runs[i].seed, runs[i].dice);
          else
            c3_outfile_printf(o, ", budget %" PRId64 ": %.4g</title></circle>", bud[b],
                              runs[i].dice);
        }
      c3_outfile_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                        "stroke=\"%s\" stroke-width=\"2\"/>", x, c3_py(&a, mean - sd), x,
                        c3_py(&a, mean + sd), col);
      c3_outfile_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\" "
                        "stroke=\"#fff\"><title>", x, y, col);
      c3_html_text(o, strat[s]);
      c3_outfile_printf(o, ", budget %" PRId64 ": %.4g +- %.4g over %" PRId64 " seed%s"
                        "</title></circle>", bud[b], mean, sd, k, k == 1 ? "" : "s");
    }
    c3_outfile_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\"/><text "
                      "x=\"%.1f\" y=\"%.1f\" class=\"tk\">", a.x1 + 18, a.y0 + 12 + 18 * s,
                      col, a.x1 + 28, a.y0 + 16 + 18 * s);
    c3_html_text(o, strat[s]);
    c3_outfile_printf(o, "</text></g>\n");
  }
  c3_outfile_printf(o, "</svg>\n");
}
