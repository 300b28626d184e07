//! End-to-end tests: the real `ferryd` and `ferry` binaries (or the server in-process where a
//! test must reach inside), on 127.0.0.1 with OS-assigned ports, each in its own directory.

mod access;
mod balancer;
mod bench;
mod chaos;
mod confinement;
mod extension;
mod faults;
mod folders;
mod json;
mod landing;
mod layout;
mod lifecycle;
mod limits;
mod lockout;
mod logging;
mod names;
#[cfg(feature = "s3")]
mod objectstore;
#[cfg(feature = "s3")]
mod objectstore_resume;
mod partials;
mod pipeline;
mod port_file;
mod protocol;
mod resume;
mod script;
mod slow;
mod startup;
mod tls;
mod transfer;
mod tree_edges;
mod trees;
mod verbs;
