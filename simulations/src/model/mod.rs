//! Models of what a cluster does on its own: the load a workload receives, how its pods
//! serve it, and how the Kubernetes HPA controller reacts. Pure: time comes in as arguments.

pub mod hpa;
pub mod incident;
pub mod load;
pub mod workload;
