//! The OpenAPI document (`infra/openapi.yaml`) describes exactly the routes the template
//! (`infra/template.yaml`) serves: no route without a description, no description of a route
//! that does not exist. Needs no running stack; `scripts/schemathesis.sh` checks the answers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use latchkey::problem::Code;
use latchkey_local::template::Template;
use serde_norway::Value;

/// HTTP methods an OpenAPI path item can hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn openapi() -> Value {
    let text = std::fs::read_to_string(repo_root().join("infra/openapi.yaml")).unwrap();
    serde_norway::from_str(&text).expect("infra/openapi.yaml is YAML")
}

/// Every `METHOD /path` that an `HttpApi` event of a function in the template serves.
fn template_routes() -> BTreeSet<String> {
    let template = Template::load(&repo_root().join("infra/template.yaml")).unwrap();
    template
        .functions
        .iter()
        .flat_map(|f| f.routes.iter())
        .map(|r| format!("{} {}", r.method.to_ascii_uppercase(), r.path))
        .collect()
}

/// Every `METHOD /path` operation under `paths` in an OpenAPI document.
fn openapi_operations(doc: &Value) -> BTreeSet<String> {
    let paths = doc["paths"].as_mapping().expect("`paths` is a mapping");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let path = path.as_str().expect("path keys are strings").to_owned();
            item.as_mapping()
                .expect("a path item is a mapping")
                .keys()
                .filter_map(|k| k.as_str())
                .filter(|k| METHODS.contains(k))
                .map(move |method| format!("{} {path}", method.to_ascii_uppercase()))
        })
        .collect()
}

#[test]
fn the_openapi_document_describes_exactly_the_routes_the_template_serves() {
    let documented = openapi_operations(&openapi());
    let served = template_routes();
    assert!(
        served.len() > 20,
        "the template serves suspiciously few routes: {served:?}"
    );

    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "served by infra/template.yaml but not in infra/openapi.yaml: {undocumented:?}\n\
         in infra/openapi.yaml but not served by infra/template.yaml: {not_served:?}"
    );
}

#[test]
fn every_problem_code_the_service_can_answer_is_documented() {
    let doc = openapi();
    let documented: BTreeSet<&str> = doc["components"]["schemas"]["ProblemCode"]["enum"]
        .as_sequence()
        .expect("Problem.code has an enum")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let served: BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "codes missing from openapi.yaml: {missing:?}"
    );
}

#[test]
fn the_route_reader_sees_every_operation_and_nothing_else() {
    let doc: Value = serde_norway::from_str(
        "\
paths:
  /v1/users/{id}:
    parameters:
      - name: id
    get:
      responses: {}
    delete:
      description: 'post: not an operation'
  /accept-invite:
    head:
      responses: {}
components:
  schemas:
    get: {}
",
    )
    .unwrap();
    let expected: BTreeSet<String> = [
        "GET /v1/users/{id}",
        "DELETE /v1/users/{id}",
        "HEAD /accept-invite",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(openapi_operations(&doc), expected);
}
