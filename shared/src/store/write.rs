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
}

impl Write {
    pub fn update(key: (String, String)) -> Self {
        Self {
            key,
            kind: Kind::Update(String::new()),
            condition: None,
            names: HashMap::new(),
            values: HashMap::new(),
        }
    }

    pub fn delete(key: (String, String)) -> Self {
        Self {
            key,
            kind: Kind::Delete,
            condition: None,
            names: HashMap::new(),
            values: HashMap::new(),
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

    pub fn condition(mut self, expression: &str) -> Self {
        self.condition = Some(expression.to_owned());
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
                    .update_expression(expression)
                    .set_condition_expression(self.condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build()
                    .map_err(|e| StoreError::build(operation, e))?,
            ),
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
