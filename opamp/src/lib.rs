//! rmm-opamp
