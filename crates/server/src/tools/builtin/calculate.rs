//! `calculate`: arithmetic through the `evalexpr` expression evaluator
//! (a parser and interpreter for expressions, never code execution).
//! Whole numbers are read as real numbers, so `7 / 2` is 3.5 as a person
//! expects, not evalexpr's integer division; a whole result comes back as
//! an integer.

use async_trait::async_trait;
use colloquy_ai::ToolDefinition;
use serde_json::{json, Value};

use crate::tools::{Tool, ToolContext, ToolFailure};

/// Longest expression accepted, in characters.
const MAX_EXPRESSION_CHARS: usize = 500;

/// Largest magnitude returned as an integer (exact in a JSON double).
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

pub struct Calculate;

#[async_trait]
impl Tool for Calculate {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "calculate".into(),
            description: "Evaluate an arithmetic expression exactly instead of guessing: \
                          + - * / % ^ (power), parentheses, and functions such as \
                          math::sqrt, math::ln, math::sin, min, max, floor, round."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "expression": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_EXPRESSION_CHARS,
                        "description": "The expression, e.g. \"6 * 7\" or \"(1.5 + 2) ^ 2\"",
                    },
                },
                "required": ["expression"],
                "additionalProperties": false,
            }),
        }
    }

    async fn call(&self, _: &ToolContext, arguments: Value) -> Result<Value, ToolFailure> {
        let expression = arguments["expression"].as_str().unwrap_or_default();
        let result = evaluate(expression)?;
        Ok(json!({ "expression": expression, "result": result }))
    }
}

/// The value of `expression` as JSON (a number, or a boolean for a comparison).
fn evaluate(expression: &str) -> Result<Value, ToolFailure> {
    let invalid = |e: &dyn std::fmt::Display| {
        ToolFailure::new("invalid_expression", format!("Cannot evaluate: {e}"))
    };
    let value = evalexpr::eval(&as_real_numbers(expression)).map_err(|e| invalid(&e))?;
    match value {
        evalexpr::Value::Float(number) => number_json(number),
        evalexpr::Value::Int(number) => Ok(json!(number)),
        evalexpr::Value::Boolean(truth) => Ok(json!(truth)),
        other => Err(invalid(&format!("the result {other} is not a number"))),
    }
}

fn number_json(number: f64) -> Result<Value, ToolFailure> {
    if !number.is_finite() {
        return Err(ToolFailure::new(
            "invalid_expression",
            "The result is not a finite number (division by zero or overflow).",
        ));
    }
    if number.fract() == 0.0 && number.abs() <= MAX_EXACT_INTEGER {
        // Exact: the magnitude is checked above.
        return Ok(json!(number as i64));
    }
    Ok(json!(number))
}

/// `expression` with every whole-number literal written as a real one
/// (`7` becomes `7.0`). Digits inside names (`math::log2`) and numbers that
/// already have a point or an exponent are left alone.
fn as_real_numbers(expression: &str) -> String {
    let chars: Vec<char> = expression.chars().collect();
    let mut out = String::with_capacity(expression.len() + 8);
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        let in_name = index > 0 && {
            let before = chars[index - 1];
            before.is_alphanumeric() || before == '_' || before == '.'
        };
        if !c.is_ascii_digit() || in_name {
            out.push(c);
            index += 1;
            continue;
        }
        let start = index;
        while index < chars.len() && chars[index].is_ascii_digit() {
            index += 1;
        }
        out.extend(&chars[start..index]);
        let next = chars.get(index).copied();
        let continues = matches!(next, Some(c) if c == '.' || c == 'e' || c == 'E' || c.is_alphabetic() || c == '_');
        if !continues {
            out.push_str(".0");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(expression: &str) -> Value {
        evaluate(expression).unwrap()
    }

    #[test]
    fn arithmetic_reads_like_a_calculator() {
        assert_eq!(value("6 * 7"), json!(42));
        assert_eq!(value("7 / 2"), json!(3.5));
        assert_eq!(value("(1.5 + 2) ^ 2"), json!(12.25));
        assert_eq!(value("2 ^ 10"), json!(1024));
        assert_eq!(value("math::sqrt(16)"), json!(4));
        assert_eq!(value("1e3 + 1"), json!(1001));
        assert_eq!(value("3 > 2"), json!(true));
    }

    #[test]
    fn names_keep_their_digits() {
        assert_eq!(
            as_real_numbers("math::log2(8) + 10"),
            "math::log2(8.0) + 10.0"
        );
        assert_eq!(as_real_numbers("1.5e3"), "1.5e3");
    }

    #[test]
    fn bad_expressions_fail_with_a_message() {
        for expression in ["6 *", "1 / 0", "\"text\"", "unknown_function(1)", "x"] {
            let failure = evaluate(expression).unwrap_err();
            assert_eq!(failure.code, "invalid_expression", "{expression}");
            assert!(!failure.message.is_empty());
        }
    }
}
