//! The auditor service (built in the next commit).
