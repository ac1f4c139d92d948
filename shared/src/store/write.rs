//! A small builder for the update, delete and condition-check parts of a transaction, so
//! that each operation reads as its expressions and nothing else.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem, Update};

use super::{Store, StoreError, av};

enum Kind {
    Update(String),
    Delete,
}

pub struct Write {
    key: (String, String),
    kind: Kind,
    condition: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    /// Clauses added to the update expression by helpers ([`Write::also`]), merged at build,
    /// whatever order the expression and the helpers were given in.
    extra: Vec<(Clause, String)>,
}

/// The clauses of an update expression that helpers add to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clause {
    Set,
    Add,
    Remove,
}

impl Clause {
    fn keyword(self) -> &'static str {
        match self {
            Self::Set => "SET",
            Self::Add => "ADD",
            Self::Remove => "REMOVE",
        }
    }
}

impl Write {
    pub fn update(key: (String, String)) -> Self {
        Self {
            key,
            kind: Kind::Update(String::new()),
            condition: None,
            names: HashMap::new(),
            values: HashMap::new(),
            extra: Vec::new(),
        }
    }

    pub fn delete(key: (String, String)) -> Self {
        Self {
            key,
            kind: Kind::Delete,
            condition: None,
            names: HashMap::new(),
            values: HashMap::new(),
            extra: Vec::new(),
        }
    }

    /// The update expression; written whole (`SET … ADD … REMOVE …`) or prefixed with `SET`.
    pub fn set(mut self, expression: &str) -> Self {
        let expression = if ["SET ", "ADD ", "REMOVE "]
            .iter()
            .any(|p| expression.starts_with(p))
        {
            expression.to_owned()
        } else {
            format!("SET {expression}")
        };
        self.kind = Kind::Update(expression);
        self
    }

    /// A condition the write needs; several are all needed (joined with AND).
    pub fn condition(mut self, expression: &str) -> Self {
        self.condition = Some(match self.condition.take() {
            None => expression.to_owned(),
            Some(earlier) => format!("({earlier}) AND ({expression})"),
        });
        self
    }

    /// Adds `part` (e.g. `a = :b`) to the `clause` of the update expression.
    pub fn also(mut self, clause: Clause, part: &str) -> Self {
        self.extra.push((clause, part.to_owned()));
        self
    }

    pub fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names
            .insert(placeholder.to_owned(), attribute.to_owned());
        self
    }

    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    pub fn build(
        self,
        store: &Store,
        operation: &'static str,
    ) -> Result<TransactWriteItem, StoreError> {
        let key = HashMap::from([
            ("PK".to_owned(), av(self.key.0)),
            ("SK".to_owned(), av(self.key.1)),
        ]);
        let names = (!self.names.is_empty()).then_some(self.names);
        let values = (!self.values.is_empty()).then_some(self.values);
        let item = match self.kind {
            Kind::Update(expression) => TransactWriteItem::builder().update(
                Update::builder()
                    .table_name(store.table())
                    .set_key(Some(key))
                    .update_expression(merge(&expression, &self.extra))
                    .set_condition_expression(self.condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(|e| StoreError::build(operation, e))?,
            ),
            Kind::Delete if !self.extra.is_empty() => {
                return Err(StoreError::build(
                    operation,
                    "a delete has no update expression to add to",
                ));
            }
            Kind::Delete => TransactWriteItem::builder().delete(
                Delete::builder()
                    .table_name(store.table())
                    .set_key(Some(key))
                    .set_condition_expression(self.condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(|e| StoreError::build(operation, e))?,
            ),
        };
        Ok(item.build())
    }
}

/// `expression` with each extra part in its clause: after the clause's keyword where the
/// expression has that clause, else in a clause of its own at the end.
fn merge(expression: &str, extra: &[(Clause, String)]) -> String {
    let mut merged = expression.trim().to_owned();
    for (clause, part) in extra {
        let keyword = format!("{} ", clause.keyword());
        let at = if merged.starts_with(&keyword) {
            Some(0)
        } else {
            merged.find(&format!(" {keyword}")).map(|i| i + 1)
        };
        match at {
            Some(i) => merged.insert_str(i + keyword.len(), &format!("{part}, ")),
            None if merged.is_empty() => merged = format!("{keyword}{part}"),
            None => merged = format!("{merged} {keyword}{part}"),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_parts_join_their_clause_or_open_one() {
        let set = |p: &str| (Clause::Set, p.to_owned());
        let add = |p: &str| (Clause::Add, p.to_owned());
        let remove = |p: &str| (Clause::Remove, p.to_owned());
        let cases = [
            ("SET a = :a", vec![add("v :one")], "SET a = :a ADD v :one"),
            (
                "SET a = :a ADD n :d REMOVE x",
                vec![add("v :one"), set("b = :b"), remove("y")],
                "SET b = :b, a = :a ADD v :one, n :d REMOVE y, x",
            ),
            ("", vec![set("b = :b")], "SET b = :b"),
            // An attribute whose name contains a keyword is not a clause.
            (
                "SET ADDRESS = :a",
                vec![add("v :one")],
                "SET ADDRESS = :a ADD v :one",
            ),
        ];
        for (expression, extra, expected) in cases {
            assert_eq!(merge(expression, &extra), expected, "{expression}");
        }
    }

    #[test]
    fn conditions_given_one_after_another_all_hold() {
        let write = Write::update(("P".into(), "S".into()))
            .condition("a = :a")
            .condition("b = :b OR c = :c");
        assert_eq!(
            write.condition.as_deref(),
            Some("(a = :a) AND (b = :b OR c = :c)")
        );
    }
}
