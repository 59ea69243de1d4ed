//! Describing, loading and running one ONNX model.

use std::collections::BTreeMap;

use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

/// The runtime's name, as results record it.
pub const RUNTIME: &str = "tract";
/// The runtime's version, as results record it.
pub const VERSION: &str = "0.23.10";

/// The most elements one generated input may have (a shape past it is refused, not
/// allocated).
const MAX_INPUT_ELEMENTS: usize = 1 << 28;

/// Why a model is refused or cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The runtime cannot read or prepare the model: its own words.
    #[error("the model cannot be loaded: {0}")]
    Refused(String),
    /// A shape the model does not take, or an open axis left without a size.
    #[error("{0}")]
    Shape(String),
    /// Running it failed: the runtime's words.
    #[error("inference failed: {0}")]
    Run(String),
}

fn refused(e: impl std::fmt::Display) -> Error {
    Error::Refused(format!("{e:#}"))
}

/// One size of an input's or output's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(u64),
    /// An open axis, by the name the model gives it (`batch`, `seq`, ...; `?` when unnamed).
    Open(String),
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(n) => write!(f, "{n}"),
            Self::Open(name) => f.write_str(name),
        }
    }
}

/// An input or output of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Its name in the graph.
    pub name: String,
    /// Its element type (`f32`, `i64`, ...), when the model says.
    pub dtype: Option<String>,
    /// Its shape, when the model says.
    pub shape: Option<Vec<Dim>>,
}

/// What a model takes and gives, as the runtime reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// Its inputs, in order.
    pub inputs: Vec<Port>,
    /// Its outputs, in order.
    pub outputs: Vec<Port>,
    /// Parameters: the elements of its initializers (its weights).
    pub parameters: u64,
    /// How many nodes of each operator the graph holds.
    pub ops: BTreeMap<String, u64>,
    /// The ONNX opset it asks for (the default domain's).
    pub opset: i64,
}

fn dtype_name(dt: DatumType) -> String {
    format!("{dt:?}").to_lowercase()
}

fn port(model: &InferenceModel, outlet: OutletId, fact: &InferenceFact) -> Port {
    let shape = fact.shape.concretize().map(|dims| {
        dims.iter()
            .map(|d| match d.to_i64() {
                Ok(n) => Dim::Fixed(u64::try_from(n).unwrap_or(0)),
                Err(_) => Dim::Open(d.to_string()),
            })
            .collect()
    });
    Port {
        name: model.node(outlet.node).name.clone(),
        dtype: fact.datum_type.concretize().map(dtype_name),
        shape,
    }
}

fn read(bytes: &[u8]) -> Result<InferenceModel, Error> {
    tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .map_err(refused)
}

/// Reads what `bytes`, an ONNX model, takes and gives.
///
/// # Errors
///
/// [`Error::Refused`] with the runtime's reason when it cannot read the model or lacks one
/// of its operators.
pub fn describe(bytes: &[u8]) -> Result<Description, Error> {
    let proto = pb::ModelProto::decode(bytes).map_err(refused)?;
    let model = read(bytes)?;
    let mut inputs = Vec::new();
    for (i, outlet) in model.input_outlets().map_err(refused)?.iter().enumerate() {
        inputs.push(port(&model, *outlet, model.input_fact(i).map_err(refused)?));
    }
    let mut outputs = Vec::new();
    for (i, outlet) in model.output_outlets().map_err(refused)?.iter().enumerate() {
        outputs.push(port(
            &model,
            *outlet,
            model.output_fact(i).map_err(refused)?,
        ));
    }
    // Every operator must be one the runtime can type and optimise, or running it fails
    // later: find out now.
    model.clone().into_typed().map_err(refused)?;
    let graph = proto.graph.unwrap_or_default();
    let parameters = graph
        .initializer
        .iter()
        .map(|t| {
            t.dims
                .iter()
                .map(|d| u64::try_from(*d).unwrap_or(0))
                .product::<u64>()
        })
        .sum();
    let mut ops = BTreeMap::new();
    for node in &graph.node {
        *ops.entry(node.op_type.clone()).or_default() += 1;
    }
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty())
        .map_or(0, |o| o.version);
    Ok(Description {
        inputs,
        outputs,
        parameters,
        ops,
        opset,
    })
}

/// A model made runnable for one batch size: the first open axis of each input takes the
/// batch, the others the sizes given by name.
#[derive(Debug)]
pub struct Loaded {
    plan: Arc<TypedRunnableModel>,
    shapes: Vec<(DatumType, Vec<usize>)>,
}

impl Loaded {
    /// Prepares `bytes` for `batch` items; `sizes` gives the other open axes by name
    /// (`seq` = 128, say).
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] for a batch of 0, an open axis without a size or an input too large;
    /// [`Error::Refused`] when the runtime cannot prepare it.
    pub fn new(bytes: &[u8], batch: usize, sizes: &BTreeMap<String, usize>) -> Result<Self, Error> {
        if batch == 0 {
            return Err(Error::Shape("the batch size must be at least 1".into()));
        }
        let mut model = read(bytes)?;
        let mut shapes = Vec::new();
        for i in 0..model.input_outlets().map_err(refused)?.len() {
            let fact = model.input_fact(i).map_err(refused)?.clone();
            let name = model
                .node(model.input_outlets().map_err(refused)?[i].node)
                .name
                .clone();
            let dt = fact
                .datum_type
                .concretize()
                .ok_or_else(|| Error::Shape(format!("input {name} has no element type")))?;
            let dims = fact
                .shape
                .concretize()
                .ok_or_else(|| Error::Shape(format!("input {name} has no shape")))?;
            let mut shape = Vec::new();
            let mut batched = false;
            for d in dims.iter() {
                let size = match d.to_i64() {
                    Ok(n) => usize::try_from(n)
                        .map_err(|_| Error::Shape(format!("input {name}: size {n}")))?,
                    Err(_) if !batched => {
                        batched = true;
                        batch
                    }
                    Err(_) => *sizes.get(&d.to_string()).ok_or_else(|| {
                        Error::Shape(format!(
                            "input {name}: axis {d} is open: give its size ({d}=N)"
                        ))
                    })?,
                };
                shape.push(size);
            }
            let elements = shape.iter().try_fold(1usize, |a, s| a.checked_mul(*s));
            if elements.is_none_or(|n| n > MAX_INPUT_ELEMENTS) {
                return Err(Error::Shape(format!(
                    "input {name} of shape {shape:?} is larger than {MAX_INPUT_ELEMENTS} elements"
                )));
            }
            model = model
                .with_input_fact(i, InferenceFact::dt_shape(dt, &shape))
                .map_err(refused)?;
            shapes.push((dt, shape));
        }
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| Error::Shape(format!("the model does not take these shapes: {e:#}")))?;
        Ok(Self { plan, shapes })
    }

    /// The inputs' element types and shapes, as prepared.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.shapes
            .iter()
            .map(|(dt, s)| (dtype_name(*dt), s.clone()))
            .collect()
    }

    /// Inputs of the declared types and shapes, the same for the same `seed`: floats in
    /// [-1, 1), integers in [0, 16) (token ids, indices), booleans alternating.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] for an element type it cannot make.
    pub fn inputs(&self, seed: u64) -> Result<TVec<TValue>, Error> {
        let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out = TVec::new();
        for (dt, shape) in &self.shapes {
            let n: usize = shape.iter().product();
            let bad = |e: ndarray_shape::ShapeError| Error::Shape(e.to_string());
            let tensor = match dt {
                DatumType::F32 => {
                    let v: Vec<f32> = (0..n)
                        .map(|_| (next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
                        .collect();
                    tract_ndarray::ArrayD::from_shape_vec(shape.as_slice(), v)
                        .map_err(bad)?
                        .into_tensor()
                }
                DatumType::I64 => {
                    let v: Vec<i64> = (0..n).map(|_| (next() % 16) as i64).collect();
                    tract_ndarray::ArrayD::from_shape_vec(shape.as_slice(), v)
                        .map_err(bad)?
                        .into_tensor()
                }
                DatumType::I32 => {
                    let v: Vec<i32> = (0..n).map(|_| (next() % 16) as i32).collect();
                    tract_ndarray::ArrayD::from_shape_vec(shape.as_slice(), v)
                        .map_err(bad)?
                        .into_tensor()
                }
                DatumType::Bool => {
                    let v: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
                    tract_ndarray::ArrayD::from_shape_vec(shape.as_slice(), v)
                        .map_err(bad)?
                        .into_tensor()
                }
                other => {
                    return Err(Error::Shape(format!(
                        "inputs of type {} cannot be generated",
                        dtype_name(*other)
                    )))
                }
            };
            out.push(tensor.into());
        }
        Ok(out)
    }

    /// One inference over `inputs`; the outputs' shapes.
    ///
    /// # Errors
    ///
    /// [`Error::Run`] with the runtime's words.
    pub fn run(&self, inputs: &TVec<TValue>) -> Result<Vec<Vec<usize>>, Error> {
        let outputs = self
            .plan
            .run(inputs.clone())
            .map_err(|e| Error::Run(format!("{e:#}")))?;
        Ok(outputs.iter().map(|o| o.shape().to_vec()).collect())
    }
}

/// `ndarray`'s shape error, as tract re-exports it.
mod ndarray_shape {
    pub(super) use tract_onnx::prelude::tract_ndarray::ShapeError;
}
