//! End-to-end tests: the real handlers against moto server (SQS, DynamoDB, SNS,
//! Secrets Manager) and the HubSpot simulator, each test on its own stack.

mod batch;
mod chaos;
mod clean;
mod config_schema;
mod console;
mod corpus;
mod crms;
mod doctor;
mod erase;
mod failures;
mod identity;
mod import;
mod ingest;
mod ledger;
mod logs;
mod replay;
mod sources;
mod sync;
