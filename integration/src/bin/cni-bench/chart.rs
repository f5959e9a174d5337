//! The bench's chart: one group of horizontal bars per scenario and verb,
//! one bar per implementation, the median solid over the p95 pale. Each
//! group has its own scale (a VERSION takes 1 ms, a bridge DEL 30): what
//! the chart compares is ours against the reference on the same work, and
//! every bar carries its numbers.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

/// One implementation's latency on one verb of one scenario.
pub struct Bar {
    pub scenario: String,
    pub verb: String,
    pub label: String,
    pub median_ms: f64,
    pub p95_ms: f64,
}

const WIDTH: u32 = 960;
const LABEL_W: i32 = 300;
const BAR_W: i32 = 440;
const ROW_H: i32 = 20;
const HEADER_H: i32 = 22;
const GAP: i32 = 8;
const TOP: i32 = 56;

/// Implementation colours: ours, the reference, and a baseline such as /bin/true.
fn colour(label: &str) -> (RGBColor, RGBColor) {
    match label {
        "ours" => (RGBColor(31, 119, 180), RGBColor(174, 199, 232)),
        "reference" => (RGBColor(255, 127, 14), RGBColor(255, 187, 120)),
        _ => (RGBColor(110, 110, 110), RGBColor(199, 199, 199)),
    }
}

/// The groups in order of first appearance: (scenario, verb) and its bars.
fn groups(bars: &[Bar]) -> Vec<(String, Vec<&Bar>)> {
    let mut out: Vec<(String, Vec<&Bar>)> = Vec::new();
    for b in bars {
        let title = format!("{} · {}", b.scenario, b.verb);
        match out.iter_mut().find(|(t, _)| *t == title) {
            Some((_, v)) => v.push(b),
            None => out.push((title, vec![b])),
        }
    }
    out
}

/// Draw `bars` into an SVG file at `path`.
pub fn write_svg(path: &Path, bars: &[Bar]) -> Result<()> {
    let groups = groups(bars);
    let rows: i32 = groups.iter().map(|(_, v)| v.len() as i32).sum();
    let height = TOP + groups.len() as i32 * (HEADER_H + GAP) + rows * ROW_H + 40;
    let root = SVGBackend::new(path, (WIDTH, height.max(1) as u32)).into_drawing_area();
    let err = |e| anyhow!("{e:?}");
    root.fill(&WHITE).map_err(err)?;
    let title = ("sans-serif", 22).into_font();
    let text = ("sans-serif", 16).into_font();
    let small = ("sans-serif", 15).into_font().color(&RGBColor(90, 90, 90));
    root.draw(&Text::new(
        "cni-bench: latency per plugin call (fork+exec+run+exit), ours vs the Go reference",
        (10, 10),
        title,
    ))
    .map_err(err)?;
    root.draw(&Text::new(
        "solid: median, pale: p95; each group is scaled to its largest p95",
        (10, 34),
        small.clone(),
    ))
    .map_err(err)?;

    let mut y = TOP;
    for (name, group) in &groups {
        root.draw(&Text::new(name.clone(), (10, y + 4), text.clone()))
            .map_err(err)?;
        y += HEADER_H;
        let max = group
            .iter()
            .map(|b| b.p95_ms.max(b.median_ms))
            .fold(0.0_f64, f64::max)
            .max(1e-9);
        let px = |v: f64| (v / max * BAR_W as f64).round() as i32;
        for b in group {
            let (solid, pale) = colour(&b.label);
            root.draw(&Text::new(
                b.label.clone(),
                (LABEL_W - 90, y + 3),
                small.clone(),
            ))
            .map_err(err)?;
            let x0 = LABEL_W;
            let (top, bottom) = (y + 2, y + ROW_H - 2);
            root.draw(&Rectangle::new(
                [(x0, top), (x0 + px(b.p95_ms).max(1), bottom)],
                pale.filled(),
            ))
            .map_err(err)?;
            root.draw(&Rectangle::new(
                [(x0, top), (x0 + px(b.median_ms).max(1), bottom)],
                solid.filled(),
            ))
            .map_err(err)?;
            root.draw(&Text::new(
                format!("{:.2} ms  (p95 {:.2})", b.median_ms, b.p95_ms),
                (x0 + BAR_W + 8, y + 3),
                small.clone(),
            ))
            .map_err(err)?;
            y += ROW_H;
        }
        y += GAP;
    }
    root.present().map_err(err)?;
    Ok(())
}
