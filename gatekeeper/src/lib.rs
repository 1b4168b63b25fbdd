//! The medrec gatekeeper: run by each record holder, it keeps records encrypted at rest and
//! serves one only to a requester whose signed request passes every check and whom the chain
//! allows to read that category of that patient at that moment. Every read and denial goes
//! into a hash-chained access log that the patient can check.

pub mod cache;
pub mod crypto;
pub mod error;
pub mod facts;
pub mod research;
pub mod server;
