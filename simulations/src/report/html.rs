//! The report page: one self-contained HTML5 document (inline CSS, inline SVG, no scripts, no
//! fonts), so it can be mailed, archived as a CI artefact or opened offline and look the same.
//!
//! Every plot's `<svg>` carries `data-plot`, `data-scenario`, `data-run` and `data-workload`
//! (slugs, see [`super::slug`]) and an id made of them, which is how tests and readers'
//! tools find a plot without depending on the page's layout.

use std::fmt::Write as _;

use super::plot::{self, PlotError, PlotKind, PlotSubject};
use super::scorecard::{
    FLAP_WINDOW, GRACE, MITIGATION_HOLD, Scorecard, human_seconds, incident_kinds, per_incident,
};
use super::{ScenarioRuns, slug};

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;\
margin:2rem auto;max-width:1000px;padding:0 1rem;color:#222;line-height:1.45}\
h1{font-size:1.6rem}h2{margin-top:2.5rem;border-bottom:2px solid #ddd;padding-bottom:.2rem}\
h3{margin-top:1.8rem}h4{margin:1rem 0 .3rem;font-weight:normal;color:#555}\
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}\
th,td{border:1px solid #ccc;padding:.25rem .55rem;text-align:right}\
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}\
thead th{background:#f3f3f3}tbody tr:nth-child(even){background:#fafafa}\
figure{margin:.4rem 0}svg{max-width:100%;height:auto;display:block}\
.rules{font-size:.85rem;color:#444}.rules li{margin:.15rem 0}code{font-size:.9em}";

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

/// The whole page; `cards[i]` are the scorecards of `scenarios[i]`'s runs.
pub fn page(scenarios: &[ScenarioRuns<'_>], cards: &[Vec<Scorecard>]) -> Result<String, PlotError> {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>homeostat simulation report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>homeostat simulation report</h1>\n\
         <p>Each scenario ran three ways on the same load trace: with no autoscaling at all \
         (replicas stay as the scenario set them), with the HPA alone, and with homeostat in \
         front of the HPA. Shaded: the scenario's incident windows (ground truth). Vertical \
         lines: homeostat's decisions, labelled with the verdict.</p>\n<nav><ul>\n"
    );
    for s in scenarios {
        let name = &s.scenario.name;
        let _ = writeln!(
            out,
            "<li><a href=\"#scenario-{}\">{}</a></li>",
            slug(name),
            escape(name)
        );
    }
    out.push_str("</ul></nav>\n");
    for (s, cards) in scenarios.iter().zip(cards) {
        scenario(&mut out, s, cards)?;
    }
    out.push_str(&rules());
    out.push_str("</body>\n</html>\n");
    Ok(out)
}

fn scenario(out: &mut String, s: &ScenarioRuns<'_>, cards: &[Scorecard]) -> Result<(), PlotError> {
    let name = &s.scenario.name;
    let sid = slug(name);
    let _ = writeln!(
        out,
        "<section id=\"scenario-{sid}\" data-scenario=\"{sid}\">\n<h2>{}</h2>\n<p>{}</p>",
        escape(name),
        escape(&s.scenario.description)
    );
    scorecard_table(out, &sid, cards);
    for run in s.runs {
        let rid = slug(&run.controller);
        let _ = writeln!(
            out,
            "<section id=\"run-{sid}-{rid}\" data-scenario=\"{sid}\" data-run=\"{rid}\">\n<h3>{}</h3>",
            escape(&run.controller)
        );
        for w in &run.workloads {
            let wid = slug(&w.name);
            let spec = s
                .scenario
                .workloads
                .iter()
                .find(|spec| format!("{}/{}", spec.namespace, spec.name) == w.name);
            let subject = PlotSubject {
                run,
                workload: w,
                pod_capacity: spec.map(|spec| spec.pod.capacity),
            };
            let _ = writeln!(out, "<h4>{}</h4>", escape(&w.name));
            for kind in PlotKind::ALL {
                let pid = kind.id();
                let svg = plot::render(kind, &subject)?;
                let attributes = format!(
                    "<svg id=\"plot-{sid}-{rid}-{wid}-{pid}\" data-plot=\"{pid}\" \
                     data-scenario=\"{sid}\" data-run=\"{rid}\" data-workload=\"{wid}\" \
                     role=\"img\" aria-label=\"{} {}: {pid}\"",
                    escape(&run.controller),
                    escape(&w.name)
                );
                let svg = svg.trim_start().replacen("<svg", &attributes, 1);
                let _ = writeln!(out, "<figure>\n{svg}</figure>");
            }
        }
        out.push_str("</section>\n");
    }
    out.push_str("</section>\n");
    Ok(())
}

fn scorecard_table(out: &mut String, sid: &str, cards: &[Scorecard]) {
    let _ = writeln!(
        out,
        "<table class=\"scorecard\" data-scenario=\"{sid}\">\n<thead><tr><th>run</th>\
         <th>workload</th><th>SLO violated (min)</th><th>p99 latency, median tick (ms)</th>\
         <th>p99 latency, p99 tick (ms)</th><th>pod-hours</th><th>actions</th>\
         <th>false actions</th><th>flaps</th><th>incidents</th><th>time to detect</th>\
         <th>time to mitigate</th></tr></thead>\n<tbody>"
    );
    for c in cards {
        for w in &c.workloads {
            let _ = writeln!(
                out,
                "<tr data-run=\"{}\"><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.0}</td>\
                 <td>{:.0}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td></tr>",
                slug(&c.run),
                escape(&c.run),
                escape(&w.workload),
                w.slo_violation_minutes,
                w.latency_p99_median_ms,
                w.latency_p99_p99_ms,
                w.pod_hours,
                w.actions,
                w.false_actions,
                w.flaps,
                escape(&incident_kinds(w)),
                escape(&per_incident(w, |i| i.time_to_detect_seconds)),
                escape(&per_incident(w, |i| i.time_to_mitigate_seconds)),
            );
        }
    }
    out.push_str("</tbody>\n</table>\n");
}

fn rules() -> String {
    let minutes = |d: std::time::Duration| human_seconds(Some(d.as_secs_f64()));
    format!(
        "<section class=\"rules\" id=\"scorecard-rules\">\n<h2>How the scorecard is computed</h2>\n<ul>\n\
         <li><b>Incidents</b>: maximal runs of ticks inside one of the scenario's load events \
         or incidents that affect the workload (ground truth: a node's incident affects the \
         workloads with pods on that node), each labelled with the kinds seen in it.</li>\n\
         <li><b>SLO violated</b>: ticks whose p99 latency is over the objective, in minutes.</li>\n\
         <li><b>p99 latency</b>: each tick has one p99 latency (of the requests served in \
         it); the table gives the median and the 99th percentile (nearest rank) of those over \
         the run.</li>\n\
         <li><b>Pod-hours</b>: every pod that exists, ready or not, for every tick.</li>\n\
         <li><b>Actions</b>: decisions applied (in dry-run: planned).</li>\n\
         <li><b>Time to detect</b>: from an incident's start to the first tick the brain judged \
         the workload anomalous, up to {} after the incident; — when nothing was found.</li>\n\
         <li><b>Time to mitigate</b>: from an incident's start until latency is back within \
         the objective and stays there for {} (or until the incident ends, if sooner); 0 when \
         it never left; — when it never came back.</li>\n\
         <li><b>False actions</b>: actions outside every incident; an action that gives \
         capacity back (lowers <code>minReplicas</code>) may come up to {} after the \
         incident ends.</li>\n\
         <li><b>Flaps</b>: consecutive <code>minReplicas</code> changes in opposite \
         directions at most {} apart.</li>\n</ul>\n</section>\n",
        minutes(GRACE),
        minutes(MITIGATION_HOLD),
        minutes(GRACE),
        minutes(FLAP_WINDOW),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    }
}
