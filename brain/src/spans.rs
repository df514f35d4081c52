//! Decision spans: one OTLP trace per decision, exported with opentelemetry-otlp.
//!
//! `homeostat.decide` is the root; `homeostat.policy.evaluate` and, when something was planned,
//! `homeostat.actuate` are its children; `homeostat.verify` joins the trace when the applied
//! change has been judged, minutes later. (A brain restarted in between no longer knows the
//! trace: its verify span is then a root of its own, carrying the decision's id.) Attributes use the OpenTelemetry Kubernetes names
//! and `homeostat.*`, so a trace backend can answer "what did it do to checkout, and why".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use homeostat_core::{Action, Decision, Outcome, WorkloadKind, semconv};
use opentelemetry::trace::{Span, SpanContext, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use thiserror::Error;

/// Why the span exporter could not be set up or flushed.
#[derive(Debug, Error)]
pub enum SpanError {
    /// The OTLP exporter could not be built.
    #[error("OTLP span exporter for {endpoint}: {message}")]
    Exporter {
        /// The endpoint configured.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
    /// Spans could not be flushed.
    #[error("flushing decision spans: {0}")]
    Flush(String),
}

/// How long each step of a decision took, for its spans' timing.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepTimings {
    /// Policy evaluation.
    pub evaluate: Duration,
    /// Planning and applying.
    pub actuate: Duration,
}

/// Emits decision spans, or nothing when no endpoint is configured.
#[derive(Clone, Debug, Default)]
pub struct DecisionSpans {
    provider: Option<SdkTracerProvider>,
    /// The root span of each decision awaiting its verification, to parent `homeostat.verify`.
    awaiting: Arc<Mutex<HashMap<String, SpanContext>>>,
}

impl DecisionSpans {
    /// Spans go nowhere.
    pub fn disabled() -> Self {
        DecisionSpans::default()
    }

    /// Spans go to the OTLP/gRPC endpoint, e.g. `http://collector:4317`. Needs a Tokio runtime.
    pub fn otlp(endpoint: &str, service_name: &str) -> Result<Self, SpanError> {
        let exporter = SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SpanError::Exporter {
                endpoint: endpoint.into(),
                message: e.to_string(),
            })?;
        // The async-runtime processor exports on Tokio, which tonic needs; the default
        // processor's own thread has no reactor.
        let processor =
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
        let resource = Resource::builder()
            .with_service_name(service_name.to_owned())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .build();
        Ok(DecisionSpans {
            provider: Some(provider),
            awaiting: Arc::default(),
        })
    }

    /// Records one decision as a trace.
    pub fn record(&self, decision: &Decision, timings: StepTimings) {
        let Some(provider) = &self.provider else {
            return;
        };
        let tracer = provider.tracer("homeostat");
        let start = decision.time.to_system_time();
        let evaluated = start + timings.evaluate;
        let end = evaluated + timings.actuate;

        let root = tracer
            .span_builder("homeostat.decide")
            .with_start_time(start)
            .with_attributes(decide_attributes(decision))
            .start(&tracer);
        let cx = Context::current_with_span(root);

        let verdict = &decision.verdict;
        let mut evaluate = tracer
            .span_builder("homeostat.policy.evaluate")
            .with_start_time(start)
            .with_attributes(vec![
                KeyValue::new(semconv::HOMEOSTAT_VERDICT, verdict.kind.as_str()),
                KeyValue::new(semconv::HOMEOSTAT_RULE, verdict.rule.clone()),
                KeyValue::new(semconv::HOMEOSTAT_REASON, verdict.reason.clone()),
                KeyValue::new(
                    semconv::HOMEOSTAT_POLICY,
                    verdict.policy.clone().unwrap_or_default(),
                ),
            ])
            .start_with_context(&tracer, &cx);
        evaluate.end_with_timestamp(evaluated);

        if let Some(plan) = &decision.plan {
            let mut actuate = tracer
                .span_builder("homeostat.actuate")
                .with_start_time(evaluated)
                .with_attributes(vec![
                    KeyValue::new(semconv::HOMEOSTAT_PLAN_PATCH, plan.patch.clone()),
                    KeyValue::new(
                        semconv::HOMEOSTAT_PLAN_PATCH_TYPE,
                        plan.patch_type.content_type(),
                    ),
                    KeyValue::new(semconv::HOMEOSTAT_OUTCOME, decision.outcome.as_str()),
                    KeyValue::new("homeostat.plan.summary", plan.summary.clone()),
                ])
                .start_with_context(&tracer, &cx);
            if let Outcome::Failed { error } = &decision.outcome {
                actuate.set_status(Status::error(error.clone()));
            }
            actuate.end_with_timestamp(end);
        }
        let root = cx.span();
        if matches!(decision.outcome, Outcome::Applied { .. }) && decision.anomaly.is_some() {
            self.awaiting
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(decision.id.0.clone(), root.span_context().clone());
        }
        if let Outcome::Failed { error } = &decision.outcome {
            root.set_status(Status::error(error.clone()));
        }
        root.end_with_timestamp(end);
    }

    /// Records the judgement of `decision`'s change as its trace's `homeostat.verify` span,
    /// from the change to the judgement.
    pub fn record_verification(&self, decision: &Decision) {
        let (Some(provider), Some(v)) = (&self.provider, &decision.verification) else {
            return;
        };
        let parent = self
            .awaiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&decision.id.0);
        let cx = match parent {
            Some(sc) => Context::new().with_remote_span_context(sc),
            None => Context::new(),
        };
        let tracer = provider.tracer("homeostat");
        let mut span = tracer
            .span_builder("homeostat.verify")
            .with_start_time(decision.time.to_system_time())
            .with_attributes(vec![
                KeyValue::new(semconv::HOMEOSTAT_DECISION_ID, decision.id.0.clone()),
                KeyValue::new(
                    semconv::HOMEOSTAT_ACTION,
                    decision.verdict.action.kind().as_str(),
                ),
                KeyValue::new("homeostat.verification.result", v.result()),
                KeyValue::new("homeostat.verification.helped", v.helped),
                KeyValue::new("homeostat.verification.detail", v.detail.clone()),
            ])
            .start_with_context(&tracer, &cx);
        if !v.helped {
            span.set_status(Status::error(v.detail.clone()));
        }
        span.end_with_timestamp(v.at.to_system_time());
    }

    /// Sends every finished span now; call before exiting, or before a test looks.
    pub async fn flush(&self) -> Result<(), SpanError> {
        let Some(provider) = self.provider.clone() else {
            return Ok(());
        };
        // force_flush blocks until the Tokio export task answers, so it must not hold a worker.
        tokio::task::spawn_blocking(move || provider.force_flush())
            .await
            .map_err(|e| SpanError::Flush(e.to_string()))?
            .map_err(|e| SpanError::Flush(e.to_string()))
    }

    /// Flushes and stops the exporter.
    pub async fn shutdown(&self) -> Result<(), SpanError> {
        let Some(provider) = self.provider.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .map_err(|e| SpanError::Flush(e.to_string()))?
            .map_err(|e| SpanError::Flush(e.to_string()))
    }
}

fn decide_attributes(d: &Decision) -> Vec<KeyValue> {
    let w = &d.proposal.workload;
    let (namespace_key, workload_key) = match w.kind {
        WorkloadKind::Deployment => (semconv::K8S_NAMESPACE_NAME, semconv::K8S_DEPLOYMENT_NAME),
        WorkloadKind::StatefulSet => (semconv::K8S_NAMESPACE_NAME, semconv::K8S_STATEFULSET_NAME),
        WorkloadKind::DaemonSet => (semconv::K8S_NAMESPACE_NAME, semconv::K8S_DAEMONSET_NAME),
        WorkloadKind::Cgroup => (semconv::HOST_NAME, semconv::HOMEOSTAT_CGROUP_NAME),
    };
    let mut attrs = vec![
        KeyValue::new(namespace_key, w.namespace.clone()),
        KeyValue::new(workload_key, w.name.clone()),
        KeyValue::new(semconv::HOMEOSTAT_DECISION_ID, d.id.0.clone()),
        KeyValue::new(semconv::HOMEOSTAT_MODE, d.mode.as_str()),
        KeyValue::new(semconv::HOMEOSTAT_ACTION, d.verdict.action.kind().as_str()),
        KeyValue::new(semconv::HOMEOSTAT_VERDICT, d.verdict.kind.as_str()),
        KeyValue::new(semconv::HOMEOSTAT_RULE, d.verdict.rule.clone()),
        KeyValue::new(semconv::HOMEOSTAT_REASON, d.verdict.reason.clone()),
        KeyValue::new(semconv::HOMEOSTAT_OUTCOME, d.outcome.as_str()),
        KeyValue::new("homeostat.proposal.reason", d.proposal.reason.clone()),
    ];
    if let Some(policy) = &d.verdict.policy {
        attrs.push(KeyValue::new(semconv::HOMEOSTAT_POLICY, policy.clone()));
    }
    if let Some(a) = &d.anomaly {
        attrs.push(KeyValue::new(semconv::HOMEOSTAT_ANOMALY_SCORE, a.score));
        attrs.push(KeyValue::new(
            semconv::HOMEOSTAT_ANOMALY_KIND,
            a.kind.as_str(),
        ));
    }
    if let Action::ScaleHpa {
        hpa,
        min_replicas,
        previous_min_replicas,
    } = &d.verdict.action
    {
        attrs.push(KeyValue::new(semconv::K8S_HPA_NAME, hpa.name.clone()));
        attrs.push(KeyValue::new(
            "homeostat.hpa.min_replicas",
            i64::from(*min_replicas),
        ));
        attrs.push(KeyValue::new(
            "homeostat.hpa.previous_min_replicas",
            i64::from(*previous_min_replicas),
        ));
    }
    if let Some(plan) = &d.plan {
        attrs.push(KeyValue::new(
            semconv::HOMEOSTAT_PLAN_PATCH,
            plan.patch.clone(),
        ));
        attrs.push(KeyValue::new(
            semconv::HOMEOSTAT_PLAN_PATCH_TYPE,
            plan.patch_type.content_type(),
        ));
    }
    attrs
}
