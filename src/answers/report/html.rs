//! Self-contained HTML for reports: one file, inline CSS and SVG, no scripts, no network.

use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole HTML document around `body` (already HTML).
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>{title}</title>\n<style>\n\
body{{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:60rem;color:#1b1f23;padding:0 1rem}}\n\
h1{{font-size:1.5rem}} h2{{font-size:1.15rem;margin-top:2rem}}\n\
table{{border-collapse:collapse;margin:.5rem 0}} th,td{{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left}}\n\
td.n{{text-align:right;font-variant-numeric:tabular-nums}} th{{background:#f6f8fa}}\n\
.totals{{display:flex;gap:1rem;flex-wrap:wrap}} .total{{border:1px solid #d0d7de;border-radius:6px;padding:.6rem 1rem}}\n\
.total b{{display:block;font-size:1.6rem}} svg text{{font-family:inherit;font-size:12px;fill:#1b1f23}}\n\
.note{{color:#57606a;font-size:.9rem}}\n</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n",
        title = escape(title),
    )
}

/// A row of headline figures: (label, value).
pub(crate) fn totals(items: &[(&str, String)]) -> String {
    let mut out = String::from("<div class=\"totals\">");
    for (label, value) in items {
        let _ = write!(
            out,
            "<div class=\"total\"><b>{}</b>{}</div>",
            escape(value),
            escape(label)
        );
    }
    out.push_str("</div>\n");
    out
}

/// A table; cells are text, escaped here. Cells that parse as numbers are right-aligned.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table>\n<thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let class = if cell.parse::<f64>().is_ok() {
                " class=\"n\""
            } else {
                ""
            };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// A horizontal bar chart as inline SVG: one bar per (label, value), in the order given.
pub(crate) fn bar_chart(title: &str, bars: &[(String, u64)]) -> String {
    let row = 22.0;
    // About 7 px a character at 12 px: the label column fits the longest label.
    let longest = bars
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let label_w = (longest as f64 * 7.0 + 12.0).max(120.0);
    let bar_w = 420.0;
    let width = label_w + bar_w + 70.0;
    let height = row * bars.len().max(1) as f64 + 10.0;
    let max = bars.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1) as f64;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{width}\" height=\"{height}\" \
viewBox=\"0 0 {width} {height}\"><title>{}</title>",
        escape(title)
    );
    if bars.is_empty() {
        out.push_str("<text x=\"4\" y=\"16\">none</text>");
    }
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = 5.0 + row * i as f64;
        let w = (*value as f64 / max * bar_w).max(1.0);
        let _ = write!(
            out,
            "<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\
<rect x=\"{bx}\" y=\"{y}\" width=\"{w:.1}\" height=\"{h}\" fill=\"#0969da\"><title>{label}: {value}</title></rect>\
<text x=\"{vx:.1}\" y=\"{ty}\">{value}</text>",
            lx = label_w - 6.0,
            ty = y + 13.0,
            label = escape(label),
            bx = label_w,
            h = row - 6.0,
            vx = label_w + w + 4.0,
        );
    }
    out.push_str("</svg>\n");
    out
}

/// One line of a line chart: a name, a colour, and a value per x label.
pub(crate) struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: Vec<f64>,
}

/// A mark on one x label of a line chart (for example a day on which something happened):
/// its index among the labels and the text shown when pointed at.
pub(crate) struct Marker {
    pub index: usize,
    pub title: String,
}

/// The colour of a line chart's markers.
const MARKER_COLOR: &str = "#cf222e";

/// A line chart as inline SVG over equally spaced x labels (for example days), with a
/// legend. The y axis runs from the smallest to the largest value shown. `markers`, when
/// given, is a legend name and the marked labels: each is a small triangle above the plot
/// with a faint line down through it, so that hundreds of them still leave the lines
/// readable; several on one label draw as one.
pub(crate) fn line_chart(
    title: &str,
    x_labels: &[String],
    series: &[Series<'_>],
    markers: Option<(&str, &[Marker])>,
) -> String {
    let (width, height) = (720.0, 320.0);
    // The right margin leaves room for half of the last x label, centred on its point.
    let (left, right, top, bottom) = (70.0, 45.0, 30.0, 40.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let all = series.iter().flat_map(|s| s.values.iter().copied());
    let (mut lo, mut hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    if (hi - lo).abs() < f64::EPSILON {
        hi = lo + 1.0;
    }
    let n = x_labels.len().max(2) - 1;
    let x = |i: usize| left + plot_w * i as f64 / n as f64;
    let y = |v: f64| top + plot_h * (1.0 - (v - lo) / (hi - lo));
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{width}\" height=\"{height}\" \
viewBox=\"0 0 {width} {height}\"><title>{}</title>\
<rect x=\"{left}\" y=\"{top}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#d0d7de\"/>",
        escape(title)
    );
    for (v, anchor) in [(hi, top + 4.0), (lo, top + plot_h)] {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{anchor}\" text-anchor=\"end\">{v:.0}</text>",
            left - 6.0
        );
    }
    let step = (x_labels.len() / 8).max(1);
    for (i, label) in x_labels.iter().enumerate().step_by(step) {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(i),
            height - bottom + 16.0,
            escape(label)
        );
    }
    for (k, s) in series.iter().enumerate() {
        let points: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{p}\"><title>{name}</title></polyline>\
<rect x=\"{lx}\" y=\"8\" width=\"12\" height=\"12\" fill=\"{c}\"/><text x=\"{tx}\" y=\"18\">{name}</text>",
            c = escape(s.color),
            p = points.join(" "),
            name = escape(s.name),
            lx = left + 180.0 * k as f64,
            tx = left + 180.0 * k as f64 + 16.0,
        );
        // A line of one point draws nothing: a window of one day shows as a dot.
        if let [v] = s.values[..] {
            let _ = write!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{}\"><title>{}</title></circle>",
                x(0),
                y(v),
                escape(s.color),
                escape(s.name)
            );
        }
    }
    if let Some((name, marks)) = markers.filter(|(_, m)| !m.is_empty()) {
        let lx = left + 180.0 * series.len() as f64;
        let _ = write!(
            out,
            "<path d=\"M{a} 9 L{b} 9 L{c} 19 Z\" fill=\"{MARKER_COLOR}\"/><text x=\"{tx}\" y=\"18\">{}</text>",
            escape(name),
            a = lx,
            b = lx + 12.0,
            c = lx + 6.0,
            tx = lx + 16.0,
        );
        let mut drawn: Option<usize> = None;
        for m in marks.iter().filter(|m| m.index < x_labels.len()) {
            if drawn == Some(m.index) {
                continue;
            }
            drawn = Some(m.index);
            let mx = x(m.index);
            let _ = write!(
                out,
                "<g><title>{t}</title><line x1=\"{mx:.1}\" y1=\"{top}\" x2=\"{mx:.1}\" y2=\"{bottom}\" \
stroke=\"{MARKER_COLOR}\" stroke-opacity=\"0.3\" stroke-dasharray=\"3 3\"/>\
<path d=\"M{l:.1} {ty} L{r:.1} {ty} L{mx:.1} {top} Z\" fill=\"{MARKER_COLOR}\"/></g>",
                t = escape(&m.title),
                bottom = top + plot_h,
                l = mx - 4.0,
                r = mx + 4.0,
                ty = top - 7.0,
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere() {
        let html = page("<t>", &bar_chart("a&b", &[("<script>".to_owned(), 3)]));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("<title>&lt;t&gt;</title>"));
    }

    #[test]
    fn pages_load_nothing_from_elsewhere() {
        let html = page(
            "t",
            &line_chart(
                "c",
                &["d1".to_owned(), "d2".to_owned()],
                &[Series {
                    name: "s",
                    color: "#000",
                    values: vec![1.0, 2.0],
                }],
                Some((
                    "m",
                    &[Marker {
                        index: 1,
                        title: "<m>".to_owned(),
                    }],
                )),
            ),
        );
        // The marker is drawn, its text escaped.
        assert!(html.contains("<title>&lt;m&gt;</title>"));
        assert!(!html.contains("<m>"));
        for needle in ["http://", "https://", "<script", "<link", "@import"] {
            let hits = html.matches(needle).count();
            // The SVG namespace is an identifier, not a fetch.
            let allowed = if needle == "http://" {
                html.matches("http://www.w3.org/2000/svg").count()
            } else {
                0
            };
            assert_eq!(hits, allowed, "{needle}");
        }
    }
}
