//! Test environment for amlsecrets.
