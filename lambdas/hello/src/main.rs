//! Hello world, the baseline of `make bench`'s cold-start table: the same
//! runtime crate, profile and build as the three functions, and nothing else.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(json!({"hello": "world", "echo": event.payload}))
    }))
    .await
}
