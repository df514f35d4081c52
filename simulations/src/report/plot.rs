//! The report's plots: one SVG per question a reader asks of a run (how much load, how many
//! replicas, how slow, how anomalous), all on the same time axis, each with the incident
//! windows shaded and every decision marked, so the four line up by eye.
//!
//! Drawn with plotters' SVG backend, whose text is SVG `<text>`: no font files are read, and
//! the browser renders the labels.

use std::ops::Range;
use std::time::Duration;

use homeostat_core::{Action, Decision, VerdictKind};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use thiserror::Error;

use super::scorecard::{Incident, concerns, incidents};
use crate::run::{RunResult, WorkloadRun};

/// Why a plot could not be drawn.
#[derive(Debug, Error)]
#[error("drawing the {plot} plot: {message}")]
pub struct PlotError {
    /// Which plot.
    pub plot: &'static str,
    /// What plotters said.
    pub message: String,
}

/// The plots of a workload's run, in the order a report shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlotKind {
    /// Requests per second, and what the ready pods can serve.
    Load,
    /// Desired, ready and existing pods, and the HPA's `minReplicas`.
    Replicas,
    /// p99 latency against the objective.
    Latency,
    /// The brain's anomaly score.
    Anomaly,
}

impl PlotKind {
    /// Every plot, in report order.
    pub const ALL: [PlotKind; 4] = [
        PlotKind::Load,
        PlotKind::Replicas,
        PlotKind::Latency,
        PlotKind::Anomaly,
    ];

    /// The stable name a report and its tests find the plot by (`data-plot`).
    pub fn id(self) -> &'static str {
        match self {
            PlotKind::Load => "load",
            PlotKind::Replicas => "replicas",
            PlotKind::Latency => "latency",
            PlotKind::Anomaly => "anomaly",
        }
    }

    fn title(self) -> &'static str {
        match self {
            PlotKind::Load => "load (requests/s)",
            PlotKind::Replicas => "replicas",
            PlotKind::Latency => "p99 latency (log scale) against the objective",
            PlotKind::Anomaly => "anomaly score",
        }
    }
}

/// What one plot is about.
#[derive(Clone, Copy, Debug)]
pub struct PlotSubject<'a> {
    /// The run.
    pub run: &'a RunResult,
    /// The workload of the run.
    pub workload: &'a WorkloadRun,
    /// Requests per second one ready pod serves, to draw the capacity next to the load.
    pub pod_capacity: Option<f64>,
}

/// Width and height of every plot, pixels.
pub const SIZE: (u32, u32) = (960, 250);

const INCIDENT: RGBColor = RGBColor(255, 170, 0);
const DEMAND: RGBColor = RGBColor(31, 119, 180);
const CAPACITY: RGBColor = RGBColor(120, 120, 120);
const DESIRED: RGBColor = RGBColor(31, 119, 180);
const READY: RGBColor = RGBColor(44, 160, 44);
const PODS: RGBColor = RGBColor(150, 150, 150);
const MIN_REPLICAS: RGBColor = RGBColor(214, 39, 40);
const LATENCY: RGBColor = RGBColor(148, 103, 189);
const OBJECTIVE: RGBColor = RGBColor(214, 39, 40);
const SCORE: RGBColor = RGBColor(140, 86, 75);
const ANOMALOUS: RGBColor = RGBColor(214, 39, 40);

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn failed<E: std::fmt::Display>(plot: PlotKind) -> impl Fn(E) -> PlotError {
    move |e| PlotError {
        plot: plot.id(),
        message: e.to_string(),
    }
}

/// The time axis: minutes for runs of up to two days, days beyond, so the ticks plotters
/// picks (round numbers of the unit) fall on round times.
#[derive(Clone, Copy, Debug, PartialEq)]
struct TimeAxis {
    /// Minutes in one unit of the axis.
    unit: f64,
}

impl TimeAxis {
    fn for_span(span: Duration) -> Self {
        TimeAxis {
            unit: if span > Duration::from_secs(2 * 86_400) {
                1440.0
            } else {
                1.0
            },
        }
    }

    fn x(self, t: Duration) -> f64 {
        t.as_secs_f64() / 60.0 / self.unit
    }

    fn label(self, v: f64) -> String {
        let m = (v * self.unit).max(0.0).round() as u64;
        if self.unit > 1.0 {
            match m % 1440 {
                0 => format!("day {}", m / 1440),
                r => format!("day {} {:02}:{:02}", m / 1440, r / 60, r % 60),
            }
        } else {
            format!("{:02}:{:02}", m / 60, m % 60)
        }
    }

    fn desc(self) -> &'static str {
        if self.unit > 1.0 {
            "simulated time (days since start)"
        } else {
            "simulated time (hh:mm since start)"
        }
    }
}

/// Draws one plot and returns the SVG document (a single `<svg>` element).
pub fn render(kind: PlotKind, subject: &PlotSubject<'_>) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(failed(kind))?;
        draw(kind, subject, &root)?;
        root.present().map_err(failed(kind))?;
    }
    Ok(svg)
}

fn draw(
    kind: PlotKind,
    s: &PlotSubject<'_>,
    root: &DrawingArea<SVGBackend<'_>, Shift>,
) -> Result<(), PlotError> {
    let err = failed(kind);
    let tl = &s.workload.timeline;
    let span = tl.last().map_or(s.run.step, |p| p.t + s.run.step);
    let axis = TimeAxis::for_span(span);
    let x_max = axis.x(span).max(f64::EPSILON);
    let x = |t: Duration| axis.x(t);
    let x_fmt = |v: &f64| axis.label(*v);
    let y = y_range(kind, s);
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("{} — {}", s.workload.name, kind.title()),
            ("sans-serif", 17),
        )
        .margin(8)
        .margin_right(20)
        .x_label_area_size(34)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x_max, y.clone())
        .map_err(&err)?;
    let y_fmt = |v: &f64| match kind {
        PlotKind::Latency => latency_label(*v),
        PlotKind::Anomaly => format!("{v:.1}"),
        _ => format!("{v:.0}"),
    };
    chart
        .configure_mesh()
        .x_labels(10)
        .y_labels(match kind {
            PlotKind::Latency => ((y.end - y.start).round() as usize + 1).max(2),
            _ => 6,
        })
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_desc(axis.desc())
        .y_desc(match kind {
            PlotKind::Load => "requests/s",
            PlotKind::Replicas => "pods",
            PlotKind::Latency => "p99",
            PlotKind::Anomaly => "score",
        })
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 14))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(&err)?;

    shade(&mut chart, axis, &incidents(tl, s.run.step), &y).map_err(&err)?;
    match kind {
        PlotKind::Load => {
            line(
                &mut chart,
                tl.iter().map(|p| (x(p.t), p.demand)),
                DEMAND,
                "requests/s",
            )
            .map_err(&err)?;
            if let Some(c) = s.pod_capacity {
                line(
                    &mut chart,
                    tl.iter().map(|p| (x(p.t), f64::from(p.ready) * c)),
                    CAPACITY,
                    "capacity of ready pods",
                )
                .map_err(&err)?;
            }
        }
        PlotKind::Replicas => {
            for (series, color, label) in [
                (
                    tl.iter().map(|p| p.pods).collect::<Vec<_>>(),
                    PODS,
                    "pods (paid for)",
                ),
                (tl.iter().map(|p| p.desired).collect(), DESIRED, "desired"),
                (tl.iter().map(|p| p.ready).collect(), READY, "ready"),
                (
                    tl.iter().map(|p| p.hpa_min).collect(),
                    MIN_REPLICAS,
                    "HPA minReplicas",
                ),
            ] {
                let points = tl.iter().zip(series).map(|(p, v)| (x(p.t), f64::from(v)));
                if color == MIN_REPLICAS {
                    // Dashed, so the lines it often covers show through.
                    chart
                        .draw_series(DashedLineSeries::new(
                            decimate(points.collect()),
                            8,
                            5,
                            color.stroke_width(2),
                        ))
                        .map_err(&err)?
                        .label(label)
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                        });
                } else {
                    line(&mut chart, points, color, label).map_err(&err)?;
                }
            }
        }
        PlotKind::Latency => {
            let objective = log_ms(s.workload.objective_p99.as_secs_f64());
            line(
                &mut chart,
                [(0.0, objective), (x_max, objective)].into_iter(),
                OBJECTIVE,
                &format!(
                    "objective {}",
                    latency_label(objective).trim_end_matches(".0")
                ),
            )
            .map_err(&err)?;
            line(
                &mut chart,
                tl.iter().map(|p| (x(p.t), log_ms(p.p99))),
                LATENCY,
                "p99 latency",
            )
            .map_err(&err)?;
        }
        PlotKind::Anomaly => {
            line(
                &mut chart,
                tl.iter().map(|p| (x(p.t), p.anomaly_score)),
                SCORE,
                "score of the workload",
            )
            .map_err(&err)?;
            let judged: Vec<(f64, f64)> = tl
                .iter()
                .filter(|p| p.anomalous)
                .map(|p| (x(p.t), p.anomaly_score))
                .collect();
            if !judged.is_empty() {
                chart
                    .draw_series(
                        judged
                            .into_iter()
                            .map(|c| Circle::new(c, 3, ANOMALOUS.filled())),
                    )
                    .map_err(&err)?
                    .label("judged anomalous")
                    .legend(|(x, y)| Circle::new((x + 10, y), 3, ANOMALOUS.filled()));
            }
            if tl.iter().all(|p| p.anomaly_score == 0.0) {
                chart
                    .draw_series(std::iter::once(Text::new(
                        "no detector scores in this run (no brain)",
                        (x_max / 2.0, 0.55),
                        ("sans-serif", 16)
                            .into_font()
                            .color(&RGBColor(90, 90, 90))
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )))
                    .map_err(&err)?;
            }
        }
    }
    mark_decisions(&mut chart, axis, s, &y).map_err(&err)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(190, 190, 190))
        .draw()
        .map_err(&err)?;
    Ok(())
}

/// Latency plots on a log scale drawn as log10 of milliseconds on a linear axis, so every
/// plot shares one coordinate type; the axis labels undo the logarithm.
fn log_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).max(0.001).log10()
}

fn latency_label(log_ms: f64) -> String {
    let ms = 10f64.powf(log_ms);
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

fn y_range(kind: PlotKind, s: &PlotSubject<'_>) -> Range<f64> {
    let tl = &s.workload.timeline;
    let max = |f: &dyn Fn(&crate::run::TimelinePoint) -> f64| tl.iter().map(f).fold(0.0, f64::max);
    match kind {
        PlotKind::Load => {
            let capacity = s
                .pod_capacity
                .map_or(0.0, |c| max(&|p| f64::from(p.ready) * c));
            0.0..(max(&|p| p.demand).max(capacity) * 1.1).max(1.0)
        }
        PlotKind::Replicas => {
            let top = max(&|p| f64::from(p.pods.max(p.desired).max(p.ready).max(p.hpa_min)));
            0.0..(top * 1.15).max(2.0)
        }
        PlotKind::Latency => {
            let objective = s.workload.objective_p99.as_secs_f64();
            let lo = tl
                .iter()
                .map(|p| p.p99)
                .filter(|v| *v > 0.0)
                .fold(objective, f64::min);
            let hi = max(&|p| p.p99).max(objective);
            (log_ms(lo) - 0.3).floor()..(log_ms(hi) + 0.3).ceil()
        }
        PlotKind::Anomaly => 0.0..1.08,
    }
}

fn line(
    chart: &mut Chart<'_, '_>,
    points: impl Iterator<Item = (f64, f64)>,
    color: RGBColor,
    label: &str,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    chart
        .draw_series(LineSeries::new(
            decimate(points.collect()),
            color.stroke_width(2),
        ))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    Ok(())
}

fn shade(
    chart: &mut Chart<'_, '_>,
    axis: TimeAxis,
    windows: &[Incident],
    y: &Range<f64>,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    if windows.is_empty() {
        return Ok(());
    }
    chart
        .draw_series(windows.iter().map(|i| {
            Rectangle::new(
                [(axis.x(i.start), y.start), (axis.x(i.end), y.end)],
                INCIDENT.mix(0.18).filled(),
            )
        }))?
        .label("incident")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], INCIDENT.mix(0.4).filled()));
    // Each band says what it was, at its top left.
    chart.draw_series(windows.iter().map(|i| {
        Text::new(
            i.kind.clone(),
            (axis.x(i.start), y.end),
            ("sans-serif", 11).into_font().color(&INCIDENT),
        )
    }))?;
    Ok(())
}

fn verdict_color(kind: VerdictKind) -> RGBColor {
    match kind {
        VerdictKind::Act => RGBColor(0, 128, 64),
        VerdictKind::DryRun => RGBColor(31, 90, 200),
        VerdictKind::Observe => RGBColor(110, 110, 110),
        VerdictKind::Deny => RGBColor(200, 30, 30),
    }
}

/// What a marker says: the verdict, and for a scaling the change of `minReplicas`.
fn marker_label(d: &Decision) -> String {
    let verdict = d.verdict.kind.as_str();
    match (&d.verdict.kind, &d.verdict.action) {
        (VerdictKind::Deny, _) => format!("{verdict} ({})", d.verdict.rule),
        (
            _,
            Action::ScaleHpa {
                min_replicas,
                previous_min_replicas,
                ..
            },
        ) => format!("{verdict} {previous_min_replicas}→{min_replicas}"),
        _ => verdict.to_owned(),
    }
}

/// Rows of decision labels at most; decisions beyond keep their line (its colour is the
/// verdict) but not their label, so a busy week does not bury the data.
const LABEL_ROWS: usize = 4;

/// Approximate width of a label in pixels: SVG text is measured by the browser, not here.
fn label_width(text: &str) -> i32 {
    i32::try_from(text.chars().count()).unwrap_or(i32::MAX / 8) * 7 + 6
}

/// Rows of labels, so labels of decisions close in time stack instead of overlapping: each
/// label goes to the first row whose last label ends left of it.
fn label_rows(starts_and_widths: &[(i32, i32)]) -> Vec<usize> {
    let mut ends: Vec<i32> = Vec::new();
    starts_and_widths
        .iter()
        .map(|&(start, width)| {
            let row = ends
                .iter()
                .position(|&end| end < start)
                .unwrap_or(ends.len());
            if row == ends.len() {
                ends.push(start + width);
            } else {
                ends[row] = start + width;
            }
            row
        })
        .collect()
}

fn mark_decisions(
    chart: &mut Chart<'_, '_>,
    axis: TimeAxis,
    s: &PlotSubject<'_>,
    y: &Range<f64>,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let mut decisions: Vec<&Decision> = s
        .run
        .decisions
        .iter()
        .filter(|d| concerns(d, &s.workload.name))
        .collect();
    decisions.sort_by_key(|d| d.time);
    let at = |d: &Decision| axis.x(d.time.since(s.run.start));
    for kind in [
        VerdictKind::Act,
        VerdictKind::DryRun,
        VerdictKind::Observe,
        VerdictKind::Deny,
    ] {
        let these: Vec<&&Decision> = decisions
            .iter()
            .filter(|d| d.verdict.kind == kind)
            .collect();
        if these.is_empty() {
            continue;
        }
        let color = verdict_color(kind);
        chart
            .draw_series(these.iter().map(|d| {
                PathElement::new(
                    vec![(at(d), y.start), (at(d), y.end)],
                    color.mix(0.85).stroke_width(1),
                )
            }))?
            .label(format!("decision: {}", kind.as_str()))
            .legend(move |(x, y)| {
                PathElement::new(
                    vec![(x + 10, y - 6), (x + 10, y + 6)],
                    color.stroke_width(2),
                )
            });
    }
    let labels: Vec<String> = decisions.iter().map(|d| marker_label(d)).collect();
    let spans: Vec<(i32, i32)> = decisions
        .iter()
        .zip(&labels)
        .map(|(d, l)| (chart.backend_coord(&(at(d), y.end)).0, label_width(l)))
        .collect();
    let rows = label_rows(&spans);
    let right = chart.plotting_area().get_pixel_range().0.end;
    let placed = decisions
        .iter()
        .zip(labels)
        .zip(spans)
        .zip(rows)
        .filter(|(_, row)| *row < LABEL_ROWS);
    chart.draw_series(placed.map(|(((d, label), (start, width)), row)| {
        let top = 2 + 15 * i32::try_from(row).unwrap_or(0);
        let color = verdict_color(d.verdict.kind);
        // Right of the line, or left of it where the plot ends.
        let left = if start + width + 2 > right {
            -width - 2
        } else {
            2
        };
        EmptyElement::at((at(d), y.end))
            + Rectangle::new(
                [(left, top), (left + width, top + 14)],
                WHITE.mix(0.85).filled(),
            )
            + Text::new(
                label,
                (left + 3, top + 1),
                ("sans-serif", 14)
                    .into_font()
                    .color(&color)
                    .pos(Pos::new(HPos::Left, VPos::Top)),
            )
    }))?;
    Ok(())
}

/// Most points a series keeps: beyond it a series is cut into buckets, each kept as its
/// lowest and highest point, so a week-long run stays a small page and no spike is lost.
const MAX_POINTS: usize = 2000;

fn decimate(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points;
    }
    let bucket = points.len().div_ceil(MAX_POINTS / 2);
    let mut out = Vec::with_capacity(MAX_POINTS);
    for chunk in points.chunks(bucket) {
        let lo = chunk.iter().min_by(|a, b| a.1.total_cmp(&b.1));
        let hi = chunk.iter().max_by(|a, b| a.1.total_cmp(&b.1));
        if let (Some(&lo), Some(&hi)) = (lo, hi) {
            if lo.0 <= hi.0 {
                out.extend([lo, hi]);
            } else {
                out.extend([hi, lo]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_labels_stack_and_far_ones_share_a_row() {
        assert_eq!(
            label_rows(&[(0, 50), (10, 50), (20, 50), (100, 50), (115, 20)]),
            vec![0, 1, 2, 0, 1]
        );
    }

    #[test]
    fn latency_axis_labels_undo_the_logarithm() {
        assert_eq!(latency_label(log_ms(0.5)), "500 ms");
        assert_eq!(latency_label(log_ms(12.0)), "12.0 s");
        assert_eq!(latency_label(log_ms(0.002)), "2.0 ms");
    }

    #[test]
    fn long_runs_are_plotted_in_days() {
        let week = TimeAxis::for_span(Duration::from_secs(7 * 86_400));
        assert_eq!(week.x(Duration::from_secs(86_400)), 1.0);
        assert_eq!(week.label(2.5), "day 2 12:00");
        assert_eq!(week.label(3.0), "day 3");
        let hours = TimeAxis::for_span(Duration::from_secs(3 * 3600));
        assert_eq!(hours.x(Duration::from_secs(90 * 60)), 90.0);
        assert_eq!(hours.label(100.0), "01:40");
    }

    #[test]
    fn long_series_are_decimated_keeping_their_extremes() {
        let points: Vec<(f64, f64)> = (0..40_320)
            .map(|i| (f64::from(i), if i == 12_345 { 99.0 } else { 1.0 }))
            .collect();
        let kept = decimate(points);
        assert!(kept.len() <= MAX_POINTS, "{}", kept.len());
        assert!(kept.contains(&(12_345.0, 99.0)));
        assert!(kept.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}
