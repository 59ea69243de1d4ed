//! The runtime over generated ONNX models: described, loaded for a batch size, run on
//! deterministic inputs; corrupt bytes, unknown operators and bad shapes refused with reasons.

use std::collections::BTreeMap;

use ipfsbench_runtime::{describe, fixtures, Dim, Error, Loaded};

fn no_sizes() -> BTreeMap<String, usize> {
    BTreeMap::new()
}

#[test]
fn an_mlp_is_described_from_its_bytes() -> Result<(), Error> {
    let bytes = fixtures::mlp(4, 1024);
    assert!(bytes.len() > 16_000_000, "{} bytes", bytes.len());
    let d = describe(&bytes)?;
    assert_eq!(d.parameters, 4 * (1024 * 1024 + 1024));
    assert_eq!(d.inputs.len(), 1);
    assert_eq!(d.inputs[0].name, "x");
    assert_eq!(d.inputs[0].dtype.as_deref(), Some("f32"));
    assert_eq!(
        d.inputs[0].shape,
        Some(vec![Dim::Open("batch".into()), Dim::Fixed(1024)])
    );
    assert_eq!(d.outputs.len(), 1);
    assert_eq!(d.ops["MatMul"], 4);
    assert_eq!(d.ops["Relu"], 3);
    assert_eq!(d.opset, 13);
    // The same fixture, the same bytes.
    assert_eq!(fixtures::mlp(4, 1024), bytes);
    Ok(())
}

#[test]
fn models_run_at_each_batch_size_on_the_same_inputs_each_time() -> Result<(), Error> {
    let mlp = fixtures::mlp(2, 64);
    for batch in [1, 8] {
        let loaded = Loaded::new(&mlp, batch, &no_sizes())?;
        assert_eq!(loaded.shapes(), vec![("f32".to_string(), vec![batch, 64])]);
        let inputs = loaded.inputs(7)?;
        assert_eq!(inputs, loaded.inputs(7)?);
        assert_ne!(inputs, loaded.inputs(8)?);
        assert_eq!(loaded.run(&inputs)?, vec![vec![batch, 64]]);
    }
    let conv = fixtures::convnet();
    let d = describe(&conv)?;
    assert_eq!(d.ops["Conv"], 1);
    let loaded = Loaded::new(&conv, 4, &no_sizes())?;
    assert_eq!(loaded.run(&loaded.inputs(1)?)?, vec![vec![4, 10]]);
    Ok(())
}

#[test]
fn what_the_runtime_cannot_take_is_refused_with_its_reason() {
    let refused = |r: Result<_, Error>| match r {
        Err(Error::Refused(reason)) => reason,
        other => panic!("not refused: {other:?}"),
    };
    let reason = refused(describe(b"not an onnx model"));
    assert!(!reason.is_empty());
    let mut cut = fixtures::mlp(2, 64);
    cut.truncate(cut.len() / 2);
    refused(describe(&cut));
    let reason = refused(describe(&fixtures::unknown_operator()));
    assert!(reason.contains("NoSuchOperator"), "{reason}");
    assert!(matches!(
        Loaded::new(&fixtures::mlp(1, 8), 0, &no_sizes()),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        Loaded::new(&fixtures::mlp(1, 8), 1 << 30, &no_sizes()),
        Err(Error::Shape(_))
    ));
}
