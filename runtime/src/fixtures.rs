//! Real ONNX models written in Rust (the ONNX protobuf, encoded): what the tests, the
//! benchmarks and the demo register and run. Weights are deterministic, so a fixture has the
//! same bytes, and so the same CID, every time.

use prost::Message;
use tract_onnx::pb;

const FLOAT: i32 = pb::tensor_proto::DataType::Float as i32;

/// Deterministic weights in [-0.05, 0.05).
fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) / 10.0
        })
        .collect()
}

fn tensor(name: &str, dims: &[usize], data: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|d| *d as i64).collect(),
        data_type: FLOAT,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn dim(d: Option<usize>, open: &str) -> pb::tensor_shape_proto::Dimension {
    use pb::tensor_shape_proto::dimension::Value;
    pb::tensor_shape_proto::Dimension {
        value: Some(match d {
            Some(n) => Value::DimValue(n as i64),
            None => Value::DimParam(open.into()),
        }),
        ..Default::default()
    }
}

/// A float input or output named `name` of `shape` (`None`: an open axis named `batch`).
fn value(name: &str, shape: &[Option<usize>]) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto {
                    dim: shape.iter().map(|d| dim(*d, "batch")).collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: outputs.first().map(|s| s.to_string()).unwrap_or_default(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attributes,
        ..Default::default()
    }
}

fn ints(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn model(graph: pb::GraphProto) -> Vec<u8> {
    pb::ModelProto {
        ir_version: 7,
        producer_name: "ipfsbench-runtime fixtures".into(),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

/// A multilayer perceptron: `layers` dense layers of `width` (ReLU between them) over an
/// input `[batch, width]` whose batch axis is open. Four layers of 1,024 hold 4.2 million
/// parameters, about 16 MB.
pub fn mlp(layers: usize, width: usize) -> Vec<u8> {
    let mut nodes = Vec::new();
    let mut initializers = Vec::new();
    let mut last = "x".to_string();
    for l in 0..layers {
        let (w, b) = (format!("w{l}"), format!("b{l}"));
        initializers.push(tensor(
            &w,
            &[width, width],
            weights(width * width, l as u64 + 1),
        ));
        initializers.push(tensor(&b, &[width], weights(width, l as u64 + 101)));
        let (h, z) = (format!("h{l}"), format!("z{l}"));
        nodes.push(node("MatMul", &[&last, &w], &[&h], vec![]));
        let out = if l + 1 == layers {
            "y".to_string()
        } else {
            z.clone()
        };
        nodes.push(node("Add", &[&h, &b], &[&out], vec![]));
        if l + 1 < layers {
            let r = format!("r{l}");
            nodes.push(node("Relu", &[&z], &[&r], vec![]));
            last = r;
        }
    }
    model(pb::GraphProto {
        name: format!("mlp-{layers}x{width}"),
        node: nodes,
        initializer: initializers,
        input: vec![value("x", &[None, Some(width)])],
        output: vec![value("y", &[None, Some(width)])],
        ..Default::default()
    })
}

/// A small convolutional network over `[batch, 3, 32, 32]` images: a 3x3 convolution of 16
/// channels, ReLU, global average pooling, and a dense layer to 10 classes.
pub fn convnet() -> Vec<u8> {
    let nodes = vec![
        node(
            "Conv",
            &["x", "k", "kb"],
            &["c"],
            vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])],
        ),
        node("Relu", &["c"], &["r"], vec![]),
        node("GlobalAveragePool", &["r"], &["p"], vec![]),
        node("Flatten", &["p"], &["f"], vec![]),
        node("MatMul", &["f", "w"], &["h"], vec![]),
        node("Add", &["h", "b"], &["y"], vec![]),
    ];
    model(pb::GraphProto {
        name: "convnet-16".into(),
        node: nodes,
        initializer: vec![
            tensor("k", &[16, 3, 3, 3], weights(16 * 27, 7)),
            tensor("kb", &[16], weights(16, 8)),
            tensor("w", &[16, 10], weights(160, 9)),
            tensor("b", &[10], weights(10, 10)),
        ],
        input: vec![value("x", &[None, Some(3), Some(32), Some(32)])],
        output: vec![value("y", &[None, Some(10)])],
        ..Default::default()
    })
}

/// A well-formed model whose one operator no runtime has (`NoSuchOperator`).
pub fn unknown_operator() -> Vec<u8> {
    model(pb::GraphProto {
        name: "unknown-operator".into(),
        node: vec![node("NoSuchOperator", &["x"], &["y"], vec![])],
        input: vec![value("x", &[None, Some(4)])],
        output: vec![value("y", &[None, Some(4)])],
        ..Default::default()
    })
}
