//! rmm-control-plane
