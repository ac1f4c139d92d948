//! Reads the SAM template, so the local stack runs exactly what gets deployed: the same
//! functions, the same routes and the same table keys, with no second list to keep in sync.
//!
//! Only what the local stack needs is extracted. CloudFormation short tags (`!Ref`, `!Sub`,
//! `!GetAtt`, ...) parse as tagged values and are ignored wherever a literal is expected.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_norway::Value;

/// Function timeout when neither the function nor `Globals` sets one.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The parts of the template the local stack uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub functions: Vec<FunctionSpec>,
    /// The one `AWS::DynamoDB::Table`, if the template has one.
    pub table: Option<TableSpec>,
}

/// One `AWS::Serverless::Function`.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// Logical id in the template, e.g. `InviteFunction`.
    pub logical_id: String,
    /// `Metadata.BuildProperties.Binary`, e.g. `invite`: the file name in the bin dir, and
    /// the function's name locally.
    pub binary: String,
    pub routes: Vec<RouteSpec>,
    /// `S3` events: the bucket notifications that invoke it.
    pub s3_events: Vec<S3EventSpec>,
    /// `Timeout` of the function, else of `Globals.Function`, else 30 s.
    pub timeout: Duration,
    /// Literal `Environment.Variables` of `Globals` and the function (e.g. `RUST_LOG: info`);
    /// values given by `!Ref` or `!Sub` are left out: the local stack provides those.
    pub environment: Vec<(String, String)>,
    /// The IAM actions its inline `Policies` allow (`dynamodb:GetItem`, `ses:SendEmail`...),
    /// in template order: what its role may call, so what its binary may link a client for.
    pub actions: Vec<String>,
}

/// One `HttpApi` event of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Upper-case method, or `ANY`.
    pub method: String,
    /// Path pattern such as `/v1/tenants/{tenant}/invitations`; `$default` for the catch-all.
    pub path: String,
}

impl RouteSpec {
    /// API Gateway's route key, e.g. `POST /v1/sessions` (or `$default`).
    pub fn route_key(&self) -> String {
        if self.path == "$default" {
            self.path.clone()
        } else {
            format!("{} {}", self.method, self.path)
        }
    }
}

/// One `S3` event of a function: which uploads invoke it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3EventSpec {
    /// The event's name in the template, used as the notification's id.
    pub name: String,
    /// e.g. `s3:ObjectCreated:*`.
    pub events: Vec<String>,
    /// `Filter.S3Key.Rules` as (`prefix` | `suffix`, value).
    pub key_rules: Vec<(String, String)>,
}

/// Key and index layout of the table: what `CreateTable` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub logical_id: String,
    pub attribute_definitions: Vec<AttributeDefinition>,
    pub key_schema: Vec<KeyElement>,
    pub global_secondary_indexes: Vec<GlobalSecondaryIndex>,
    pub time_to_live: Option<TimeToLive>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeDefinition {
    pub name: String,
    /// `S`, `N` or `B`.
    pub attribute_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyElement {
    pub name: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalSecondaryIndex {
    pub name: String,
    pub key_schema: Vec<KeyElement>,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection_type: String,
    pub non_key_attributes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeToLive {
    pub attribute_name: String,
    pub enabled: bool,
}

impl Template {
    /// Reads and parses a template file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading template {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing template {}", path.display()))
    }

    /// Parses template text.
    pub fn parse(text: &str) -> Result<Self> {
        let root: Value = serde_norway::from_str(text).context("template is not valid YAML")?;
        let resources = get(&root, "Resources")
            .and_then(Value::as_mapping)
            .context("template has no Resources mapping")?;
        let globals = get(&root, "Globals").and_then(|g| get(g, "Function"));

        let mut functions = Vec::new();
        let mut tables = Vec::new();
        for (id, resource) in resources {
            let id = id
                .as_str()
                .context("resource with a non-string logical id")?;
            match str_at(resource, "Type") {
                Some("AWS::Serverless::Function") => {
                    functions.push(
                        parse_function(id, resource, globals)
                            .with_context(|| format!("function {id}"))?,
                    );
                }
                Some("AWS::DynamoDB::Table") => {
                    tables.push(parse_table(id, resource).with_context(|| format!("table {id}"))?)
                }
                _ => {}
            }
        }
        if tables.len() > 1 {
            bail!(
                "the template has {} DynamoDB tables; the local stack supports one",
                tables.len()
            );
        }
        let mut seen = std::collections::HashSet::new();
        for function in &functions {
            if !seen.insert(function.binary.as_str()) {
                bail!(
                    "two functions use binary {:?}; binary names must be unique",
                    function.binary
                );
            }
        }
        Ok(Self {
            functions,
            table: tables.pop(),
        })
    }

    /// The function whose binary is `name`.
    pub fn function(&self, name: &str) -> Option<&FunctionSpec> {
        self.functions.iter().find(|f| f.binary == name)
    }
}

fn parse_function(id: &str, resource: &Value, globals: Option<&Value>) -> Result<FunctionSpec> {
    let binary = get(resource, "Metadata")
        .and_then(|m| get(m, "BuildProperties"))
        .and_then(|b| str_at(b, "Binary"))
        .context("Metadata.BuildProperties.Binary is missing or not a literal string")?
        .to_owned();
    if binary.is_empty() || binary.contains('/') {
        bail!("binary name {binary:?} is not a plain file name");
    }
    let properties = get(resource, "Properties");
    let timeout = properties
        .and_then(|p| get(p, "Timeout"))
        .or_else(|| globals.and_then(|g| get(g, "Timeout")))
        .and_then(Value::as_u64);
    // Globals first, so the function's own values win.
    let mut environment: Vec<(String, String)> = Vec::new();
    for scope in [globals, properties] {
        for (name, value) in literal_variables(scope) {
            environment.retain(|(n, _)| *n != name);
            environment.push((name, value));
        }
    }
    let mut routes = Vec::new();
    let mut s3_events = Vec::new();
    if let Some(events) = properties
        .and_then(|p| get(p, "Events"))
        .and_then(Value::as_mapping)
    {
        for (name, event) in events {
            if str_at(event, "Type") == Some("S3") {
                s3_events.push(parse_s3_event(name.as_str().unwrap_or("?"), event)?);
                continue;
            }
            if str_at(event, "Type") != Some("HttpApi") {
                continue;
            }
            let name = name.as_str().unwrap_or("?");
            let props = get(event, "Properties");
            let method = props.and_then(|p| str_at(p, "Method"));
            let path = props.and_then(|p| str_at(p, "Path"));
            let route = match (method, path) {
                (Some(method), Some(path)) => {
                    if !path.starts_with('/') {
                        bail!("event {name}: path {path:?} does not start with /");
                    }
                    let method = method.to_ascii_uppercase();
                    RouteSpec {
                        method: if method == "*" { "ANY".into() } else { method },
                        path: path.to_owned(),
                    }
                }
                // An HttpApi event with neither is the API's $default route.
                (None, None) => RouteSpec {
                    method: "ANY".into(),
                    path: "$default".into(),
                },
                _ => bail!("event {name}: HttpApi needs both Method and Path as literals"),
            };
            routes.push(route);
        }
    }
    Ok(FunctionSpec {
        logical_id: id.to_owned(),
        binary,
        routes,
        s3_events,
        timeout: timeout.map(Duration::from_secs).unwrap_or(DEFAULT_TIMEOUT),
        environment,
        actions: properties.map(allowed_actions).unwrap_or_default(),
    })
}

/// The `Action`s (one or a list) of every `Allow` statement of the inline `Policies`.
fn allowed_actions(properties: &Value) -> Vec<String> {
    let statements = seq_at(properties, "Policies")
        .into_iter()
        .flatten()
        .filter_map(|policy| seq_at(policy, "Statement"))
        .flatten()
        .filter(|statement| str_at(statement, "Effect") == Some("Allow"));
    let mut actions = Vec::new();
    for statement in statements {
        match get(statement, "Action") {
            Some(Value::String(one)) => actions.push(one.clone()),
            Some(Value::Sequence(many)) => {
                actions.extend(many.iter().filter_map(|a| a.as_str().map(str::to_owned)))
            }
            _ => {}
        }
    }
    actions
}

/// An `S3` event: its `Events` (one or a list) and its key filter rules.
fn parse_s3_event(name: &str, event: &Value) -> Result<S3EventSpec> {
    let props = get(event, "Properties").with_context(|| format!("event {name}: no Properties"))?;
    let events = match get(props, "Events") {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Sequence(many)) => many
            .iter()
            .filter_map(|e| e.as_str().map(str::to_owned))
            .collect(),
        _ => bail!("event {name}: S3 needs Events"),
    };
    let key_rules = get(props, "Filter")
        .and_then(|f| get(f, "S3Key"))
        .and_then(|k| seq_at(k, "Rules"))
        .map(|rules| {
            rules
                .iter()
                .map(|r| Ok((required_str(r, "Name")?, required_str(r, "Value")?)))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(S3EventSpec {
        name: name.to_owned(),
        events,
        key_rules,
    })
}

/// The literal scalar `Environment.Variables` under `scope`.
fn literal_variables(scope: Option<&Value>) -> Vec<(String, String)> {
    let Some(variables) = scope
        .and_then(|s| get(s, "Environment"))
        .and_then(|e| get(e, "Variables"))
        .and_then(Value::as_mapping)
    else {
        return Vec::new();
    };
    variables
        .iter()
        .filter_map(|(name, value)| {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((name.as_str()?.to_owned(), value))
        })
        .collect()
}

fn parse_table(id: &str, resource: &Value) -> Result<TableSpec> {
    let props = get(resource, "Properties").context("no Properties")?;
    let attribute_definitions = seq_at(props, "AttributeDefinitions")
        .context("AttributeDefinitions is missing")?
        .iter()
        .map(|a| {
            Ok(AttributeDefinition {
                name: required_str(a, "AttributeName")?,
                attribute_type: required_str(a, "AttributeType")?,
            })
        })
        .collect::<Result<Vec<_>>>()
        .context("AttributeDefinitions")?;
    let keys = key_schema(props).context("KeySchema")?;
    let global_secondary_indexes = match seq_at(props, "GlobalSecondaryIndexes") {
        None => Vec::new(),
        Some(indexes) => indexes
            .iter()
            .map(|index| {
                let name = required_str(index, "IndexName")?;
                let projection = get(index, "Projection");
                Ok(GlobalSecondaryIndex {
                    key_schema: key_schema(index)
                        .with_context(|| format!("index {name}: KeySchema"))?,
                    projection_type: projection
                        .and_then(|p| str_at(p, "ProjectionType"))
                        .unwrap_or("ALL")
                        .to_owned(),
                    non_key_attributes: projection
                        .and_then(|p| seq_at(p, "NonKeyAttributes"))
                        .map(|attrs| {
                            attrs
                                .iter()
                                .filter_map(|a| a.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                    name,
                })
            })
            .collect::<Result<Vec<_>>>()
            .context("GlobalSecondaryIndexes")?,
    };
    let time_to_live = match get(props, "TimeToLiveSpecification") {
        None => None,
        Some(ttl) => Some(TimeToLive {
            attribute_name: required_str(ttl, "AttributeName")
                .context("TimeToLiveSpecification")?,
            enabled: get(ttl, "Enabled").and_then(as_bool).unwrap_or(false),
        }),
    };
    Ok(TableSpec {
        logical_id: id.to_owned(),
        attribute_definitions,
        key_schema: keys,
        global_secondary_indexes,
        time_to_live,
    })
}

fn key_schema(parent: &Value) -> Result<Vec<KeyElement>> {
    let elements = seq_at(parent, "KeySchema").context("missing")?;
    elements
        .iter()
        .map(|k| {
            Ok(KeyElement {
                name: required_str(k, "AttributeName")?,
                key_type: required_str(k, "KeyType")?,
            })
        })
        .collect()
}

/// Looks a key up in a mapping (`None` for anything else, tagged values included).
fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.as_mapping().and_then(|map| map.get(key))
}

/// A literal string at `key`; tagged values (`!Ref`, `!Sub`) are not literals.
fn str_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    get(value, key).and_then(Value::as_str)
}

fn seq_at<'a>(value: &'a Value, key: &str) -> Option<&'a Vec<Value>> {
    get(value, key).and_then(Value::as_sequence)
}

fn required_str(value: &Value, key: &str) -> Result<String> {
    str_at(value, key)
        .map(str::to_owned)
        .with_context(|| format!("{key} is missing or not a literal string"))
}

/// YAML booleans, plus the strings CloudFormation also accepts.
fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Globals:
  Function:
    Timeout: 10
    Environment:
      Variables:
        TABLE_NAME: !Ref Table
        RUST_LOG: info
        LEVEL: global
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-t"
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - { AttributeName: PK, AttributeType: S }
        - { AttributeName: GSI1PK, AttributeType: S }
      KeySchema:
        - { AttributeName: PK, KeyType: HASH }
      GlobalSecondaryIndexes:
        - IndexName: by-x
          KeySchema:
            - { AttributeName: GSI1PK, KeyType: HASH }
          Projection:
            ProjectionType: INCLUDE
            NonKeyAttributes: [a, b]
      TimeToLiveSpecification:
        AttributeName: ttl
        Enabled: true
  Api:
    Type: AWS::Serverless::HttpApi
  One:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: one
    Properties:
      Timeout: 3
      Environment:
        Variables:
          LEVEL: own
          RETRIES: 3
      Policies:
        - Statement:
            Resource: !GetAtt Table.Arn
      Events:
        A:
          Type: HttpApi
          Properties: { ApiId: !Ref Api, Path: "/v1/things/{id}", Method: get }
        Sched:
          Type: Schedule
          Properties: { Schedule: rate(1 hour) }
  Two:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: two
"#;

    #[test]
    fn extracts_functions_routes_and_table() {
        let t = Template::parse(TEMPLATE).expect("parses");
        assert_eq!(t.functions.len(), 2);
        let one = t.function("one").expect("one");
        assert_eq!(one.logical_id, "One");
        assert_eq!(one.timeout, Duration::from_secs(3));
        assert_eq!(
            one.routes,
            vec![RouteSpec {
                method: "GET".into(),
                path: "/v1/things/{id}".into()
            }]
        );
        assert_eq!(one.routes[0].route_key(), "GET /v1/things/{id}");
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            one.environment,
            env(&[("RUST_LOG", "info"), ("LEVEL", "own"), ("RETRIES", "3")])
        );
        let two = t.function("two").expect("two");
        assert!(two.routes.is_empty());
        assert_eq!(two.timeout, Duration::from_secs(10));
        assert_eq!(
            two.environment,
            env(&[("RUST_LOG", "info"), ("LEVEL", "global")])
        );

        let table = t.table.expect("table");
        assert_eq!(
            table.key_schema,
            vec![KeyElement {
                name: "PK".into(),
                key_type: "HASH".into()
            }]
        );
        assert_eq!(table.attribute_definitions.len(), 2);
        let gsi = &table.global_secondary_indexes[0];
        assert_eq!(gsi.name, "by-x");
        assert_eq!(gsi.projection_type, "INCLUDE");
        assert_eq!(gsi.non_key_attributes, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(
            table.time_to_live,
            Some(TimeToLive {
                attribute_name: "ttl".into(),
                enabled: true
            })
        );
    }

    #[test]
    fn the_project_template_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
        let t = Template::load(&path).expect("infra/template.yaml is usable locally");
        assert!(t.table.is_some(), "it has the table");
        assert!(t.function("bootstrap").is_some_and(|f| f.routes.is_empty()));
        assert!(t.functions.iter().any(|f| !f.routes.is_empty()));
    }

    #[test]
    fn the_actions_of_allow_statements_are_read_and_deny_statements_are_not() {
        let t = Template::parse(
            "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        Binary: f\n    Properties:\n      Policies:\n        - Version: \"2012-10-17\"\n          Statement:\n            - Effect: Allow\n              Action: [dynamodb:GetItem, dynamodb:Query]\n              Resource: !GetAtt Table.Arn\n            - Effect: Deny\n              Action: s3:DeleteObject\n              Resource: \"*\"\n            - Effect: Allow\n              Action: ses:SendEmail\n              Resource: \"*\"\n",
        )
        .expect("parses");
        assert_eq!(
            t.functions[0].actions,
            ["dynamodb:GetItem", "dynamodb:Query", "ses:SendEmail"]
        );
    }

    #[test]
    fn missing_binary_is_an_error_naming_the_function() {
        let err = Template::parse("Resources:\n  F:\n    Type: AWS::Serverless::Function\n")
            .expect_err("must fail");
        assert!(format!("{err:#}").contains("function F"), "{err:#}");
    }

    #[test]
    fn default_timeout_is_30_seconds() {
        let t = Template::parse(
            "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        Binary: f\n",
        )
        .expect("parses");
        assert_eq!(t.functions[0].timeout, Duration::from_secs(30));
        assert!(t.table.is_none());
    }
}
