//! The reports' ratios as a horizontal bar chart in SVG: one bar per line that has a ratio,
//! green where the line met its target, red where it did not, grey where it has none; a tick
//! marks each line's target ratio and a dashed rule marks 1.0 (both sides equal).

use std::fmt::Write;

use super::Report;

/// Height of one bar's row, in pixels.
const ROW: f64 = 22.0;
/// Width of the label column.
const LABELS: f64 = 330.0;
/// Width of the bars' area.
const BARS: f64 = 420.0;
/// Room on the right for the figure.
const FIGURE: f64 = 60.0;

/// The chart, as a complete SVG document.
pub fn chart(reports: &[Report]) -> String {
    let bars: Vec<(String, f64, Option<f64>, Option<bool>)> = reports
        .iter()
        .flat_map(|report| {
            report.lines.iter().filter_map(move |line| {
                let sides = line.sides.unwrap_or(report.sides);
                line.ratio.map(|ratio| {
                    let label = format!(
                        "{} · {} ({}/{})",
                        report.workload, line.name, sides.app_short, sides.raw_short
                    );
                    (label, ratio, line.target_ratio, line.met)
                })
            })
        })
        .collect();
    let top = bars
        .iter()
        .flat_map(|(_, ratio, target, _)| [Some(*ratio), *target])
        .flatten()
        .fold(1.2_f64, f64::max);
    let scale = BARS / top;
    let header = 30.0;
    let height = header + ROW * bars.len() as f64 + 30.0;
    let width = LABELS + BARS + FIGURE;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="8" y="18" font-size="14" font-weight="bold">app / baseline, one run of `app bench` (green: target met; red: not met; grey: no target; tick: target)</text>"#
    );
    for (row, (label, ratio, target, met)) in bars.iter().enumerate() {
        let y = header + ROW * row as f64;
        let colour = match met {
            Some(true) => "#2e8b57",
            Some(false) => "#c0392b",
            None => "#999999",
        };
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LABELS - 8.0,
            y + 15.0,
            escape(label)
        );
        let _ = writeln!(
            svg,
            r#"<rect x="{LABELS}" y="{}" width="{:.1}" height="{}" fill="{colour}"/>"#,
            y + 3.0,
            ratio * scale,
            ROW - 6.0
        );
        if let Some(target) = target {
            let x = LABELS + target * scale;
            let _ = writeln!(
                svg,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" stroke="black" stroke-width="2"/>"#,
                y + 1.0,
                y + ROW - 1.0
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}">{ratio:.2}</text>"#,
            LABELS + ratio * scale + 4.0,
            y + 15.0
        );
    }
    let one = LABELS + scale;
    let bottom = header + ROW * bars.len() as f64;
    let _ = writeln!(
        svg,
        r##"<line x1="{one:.1}" x2="{one:.1}" y1="{header}" y2="{bottom}" stroke="#555" stroke-dasharray="4 3"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{one:.1}" y="{}" text-anchor="middle">1.0</text>"#,
        bottom + 16.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// `text` with XML's special characters escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
