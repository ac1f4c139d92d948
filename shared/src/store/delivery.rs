//! Recording what SES says happened to a mail (see `ops::delivery`).

use super::items::{Delivery, keys};
use super::{Store, StoreError, applied, av, encode_value};
use crate::domain::{Email, UserId};

impl Store {
    /// Records `delivery` as the user's last mail outcome, in one conditional `UpdateItem`:
    /// only if the user exists, `recipient` is the user's address (or the address the user
    /// is moving to), and no outcome with an equal or later `seq` is recorded. Returns
    /// whether it applied; `false` means stale, repeated, or not this user's mail.
    pub async fn record_delivery_outcome(
        &self,
        id: &UserId,
        recipient: &Email,
        delivery: &Delivery,
    ) -> Result<bool, StoreError> {
        const OPERATION: &str = "record_delivery_outcome";
        let seq = delivery
            .seq
            .clone()
            .ok_or_else(|| StoreError::build(OPERATION, "an SES outcome needs its seq"))?;
        let value = encode_value(OPERATION, delivery)?;
        let out = self
            .update_at(keys::user(id))
            .update_expression("SET #ld = :d")
            .condition_expression(
                "attribute_exists(PK) AND (#email = :to OR #pending = :to) \
                 AND (attribute_not_exists(#ld.#seq) OR #ld.#seq < :seq)",
            )
            .expression_attribute_names("#ld", "last_delivery")
            .expression_attribute_names("#seq", "seq")
            .expression_attribute_names("#email", "email")
            .expression_attribute_names("#pending", "pending_email")
            .expression_attribute_values(":d", value)
            .expression_attribute_values(":to", av(recipient.as_str()))
            .expression_attribute_values(":seq", av(seq))
            .send()
            .await;
        applied(OPERATION, out)
    }
}
