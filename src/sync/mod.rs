//! Pure sync logic: select remote secrets, map keys, decode, build the Secret. No IO.

pub mod build;
pub mod decode;
pub mod keys;
