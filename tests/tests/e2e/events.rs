//! Every sample event in events/ is accepted by `cargo lambda invoke`, against the local
//! gateway's Lambda invoke API, and the function answers without a function error.

use std::path::Path;

use latchkey_tests::*;

fn binary_for(file_stem: &str, functions: &[String]) -> String {
    functions
        .iter()
        .filter(|f| file_stem == f.as_str() || file_stem.starts_with(&format!("{f}-")))
        .max_by_key(|f| f.len())
        .unwrap_or_else(|| panic!("no function for events/{file_stem}.json"))
        .clone()
}

#[tokio::test]
async fn every_sample_event_is_accepted_by_cargo_lambda_invoke() {
    let stack = TestStack::start().await.unwrap();
    let root = std::env::var("LATCHKEY_ROOT").expect("run under latchkey-local test-env");
    let functions = stack.gateway().function_names();
    let mut files: Vec<_> = std::fs::read_dir(Path::new(&root).join("events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= functions.len());

    for file in files {
        let stem = file.file_stem().unwrap().to_str().unwrap().to_owned();
        let binary = binary_for(&stem, &functions);
        let answer = cargo_lambda_invoke(&stack, &binary, &file).await;
        assert!(
            answer.get("errorType").is_none(),
            "{stem}: function error {answer}"
        );
        if let Some(status) = answer.get("statusCode") {
            assert!(status.as_u64().unwrap() < 500, "{stem}: {answer}");
        }
    }
}
