//! rmm-agent
