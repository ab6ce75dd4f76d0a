//! Errors as the VPC Lattice API sends them: the `x-amzn-ErrorType` code, the HTTP status of the
//! model's error shape, and the shape's members in a JSON body (SDKs raise
//! `ValidationException`, `ResourceNotFoundException` … from these).

use serde_json::{Map, Value, json};

/// One field of a `ValidationException`'s `fieldList`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub name: String,
    pub message: String,
}

/// An API error. `resource_type` is the model's word for the resource: `SERVICE`,
/// `SERVICE_NETWORK`, `TARGET_GROUP`, `LISTENER`, `RULE`, …
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400; `reason` is one of the model's `ValidationExceptionReason`s: `unknownOperation`,
    /// `cannotParse`, `fieldValidationFailed`, `other`.
    #[error("{message}")]
    Validation {
        message: String,
        reason: &'static str,
        fields: Vec<FieldError>,
    },
    /// 403.
    #[error("{message}")]
    AccessDenied { message: String },
    /// 404.
    #[error("{message}")]
    NotFound {
        message: String,
        resource_id: String,
        resource_type: String,
    },
    /// 409.
    #[error("{message}")]
    Conflict {
        message: String,
        resource_id: String,
        resource_type: String,
    },
    /// 402, as the model says.
    #[error("{message}")]
    QuotaExceeded {
        message: String,
        resource_type: String,
        quota_code: String,
    },
    /// 429.
    #[error("{message}")]
    Throttling { message: String },
    /// 500.
    #[error("{message}")]
    Internal { message: String },
}

impl ApiError {
    /// A `ValidationException` about the input as a whole.
    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::Validation {
            message: message.into(),
            reason: "other",
            fields: Vec::new(),
        }
    }

    /// A `ValidationException` about one field.
    pub fn field(name: impl Into<String>, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::Validation {
            message: message.clone(),
            reason: "fieldValidationFailed",
            fields: vec![FieldError {
                name: name.into(),
                message,
            }],
        }
    }

    /// The error code: the `x-amzn-ErrorType` header's value and the body's `__type`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation { .. } => "ValidationException",
            ApiError::AccessDenied { .. } => "AccessDeniedException",
            ApiError::NotFound { .. } => "ResourceNotFoundException",
            ApiError::Conflict { .. } => "ConflictException",
            ApiError::QuotaExceeded { .. } => "ServiceQuotaExceededException",
            ApiError::Throttling { .. } => "ThrottlingException",
            ApiError::Internal { .. } => "InternalServerException",
        }
    }

    /// The HTTP status of the model's error shape.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Validation { .. } => 400,
            ApiError::AccessDenied { .. } => 403,
            ApiError::NotFound { .. } => 404,
            ApiError::Conflict { .. } => 409,
            ApiError::QuotaExceeded { .. } => 402,
            ApiError::Throttling { .. } => 429,
            ApiError::Internal { .. } => 500,
        }
    }

    /// The JSON body: `message` and the shape's other members.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("message".into(), Value::String(self.to_string()));
        match self {
            ApiError::Validation { reason, fields, .. } => {
                body.insert("reason".into(), json!(reason));
                if !fields.is_empty() {
                    let list: Vec<Value> = fields
                        .iter()
                        .map(|f| json!({"name": f.name, "message": f.message}))
                        .collect();
                    body.insert("fieldList".into(), Value::Array(list));
                }
            }
            ApiError::NotFound {
                resource_id,
                resource_type,
                ..
            }
            | ApiError::Conflict {
                resource_id,
                resource_type,
                ..
            } => {
                body.insert("resourceId".into(), json!(resource_id));
                body.insert("resourceType".into(), json!(resource_type));
            }
            ApiError::QuotaExceeded {
                resource_type,
                quota_code,
                ..
            } => {
                body.insert("resourceType".into(), json!(resource_type));
                body.insert("serviceCode".into(), json!("vpc-lattice"));
                body.insert("quotaCode".into(), json!(quota_code));
            }
            ApiError::AccessDenied { .. }
            | ApiError::Throttling { .. }
            | ApiError::Internal { .. } => {}
        }
        body.insert("__type".into(), json!(self.code()));
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_body_has_the_model_members() {
        let e = ApiError::field("name", "too short");
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.body(),
            json!({"message": "too short", "reason": "fieldValidationFailed",
                   "fieldList": [{"name": "name", "message": "too short"}],
                   "__type": "ValidationException"})
        );
    }

    #[test]
    fn not_found_names_the_resource() {
        let e = ApiError::NotFound {
            message: "no service svc-1".into(),
            resource_id: "svc-1".into(),
            resource_type: "SERVICE".into(),
        };
        assert_eq!((e.code(), e.status()), ("ResourceNotFoundException", 404));
        assert_eq!(e.body()["resourceType"], "SERVICE");
    }
}
