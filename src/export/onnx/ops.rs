//! One small builder per ONNX operator, appending `tract_onnx::pb` (prost) messages to a [`GraphBuilder`].
//!
//! Every op here is in [`TENSORRT_85_OPS`], so a graph built only through these functions parses in TensorRT
//! 8.5 and DeepStream 6.2 as is. Operator semantics follow the opset 13 to 17 definitions
//! (<https://onnx.ai/onnx/operators/>): `Split` takes its sizes as an input, `Softmax` one axis, `ReduceMax`
//! its axes as an attribute (an input only from opset 18, which we refuse).

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{AttributeProto, NodeProto, TensorProto};

use super::super::fuse::FusedConv;

/// The operators our graphs use, all of which TensorRT 8.5's ONNX parser imports natively
/// (onnx-tensorrt 8.5 `docs/operators.md`). `EfficientNMS_TRT` is not here: it is a TensorRT plugin, only
/// in the `nms` head.
pub const TENSORRT_85_OPS: &[&str] = &[
    "Add",
    "ArgMax",
    "Cast",
    "Concat",
    "Constant",
    "Conv",
    "Div",
    "Identity",
    "MatMul",
    "MaxPool",
    "Mul",
    "ReduceMax",
    "Reshape",
    "Resize",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Split",
    "Sub",
    "Transpose",
    "Unsqueeze",
];

/// The element type of weights and activations inside the graph (the graph's input and outputs stay f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatType {
    F32,
    F16,
}

impl FloatType {
    /// The ONNX `TensorProto.DataType` code.
    pub fn onnx(self) -> i32 {
        match self {
            FloatType::F32 => DataType::Float as i32,
            FloatType::F16 => DataType::Float16 as i32,
        }
    }
}

/// The nodes and initializers of a graph under construction, with unique names for every value.
#[derive(Debug)]
pub struct GraphBuilder {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    /// The type that weights and float constants are stored in.
    pub float: FloatType,
    next_id: usize,
}

/// A named value of the graph (a node output, an initializer or a graph input).
pub type Value = String;

impl GraphBuilder {
    pub fn new(float: FloatType) -> Self {
        Self {
            nodes: Vec::new(),
            initializers: Vec::new(),
            float,
            next_id: 0,
        }
    }

    /// Appends a node of the default domain with `outputs` fresh output names and returns them.
    pub fn node(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        outputs: usize,
        attribute: Vec<AttributeProto>,
    ) -> Vec<Value> {
        self.node_in_domain("", op_type, inputs, outputs, attribute)
    }

    /// [`GraphBuilder::node`] in a given operator domain (a plugin's, for `EfficientNMS_TRT`).
    pub fn node_in_domain(
        &mut self,
        domain: &str,
        op_type: &str,
        inputs: &[&str],
        outputs: usize,
        attribute: Vec<AttributeProto>,
    ) -> Vec<Value> {
        let name = format!("{op_type}_{}", self.next_id);
        self.next_id += 1;
        let output: Vec<Value> = (0..outputs).map(|i| format!("{name}_out{i}")).collect();
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: output.clone(),
            name,
            op_type: op_type.into(),
            domain: domain.into(),
            attribute,
            ..Default::default()
        });
        output
    }

    fn single(&mut self, op_type: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> Value {
        self.node(op_type, inputs, 1, attribute).remove(0)
    }

    /// Renames the output of the last node (so that graph outputs carry their public names).
    pub fn rename_last_output(&mut self, index: usize, name: &str) {
        if let Some(node) = self.nodes.last_mut() {
            node.output[index] = name.into();
        }
    }

    /// A float initializer in the graph's float type.
    pub fn float_const(&mut self, name: &str, dims: &[usize], values: &[f32]) -> Value {
        let tensor = float_tensor(name, dims, values, self.float);
        self.initializers.push(tensor);
        name.into()
    }

    /// An f32 initializer whatever the graph's float type (Resize's `scales` is always f32).
    pub fn f32_const(&mut self, name: &str, dims: &[usize], values: &[f32]) -> Value {
        let tensor = float_tensor(name, dims, values, FloatType::F32);
        self.initializers.push(tensor);
        name.into()
    }

    /// An int64 initializer (shapes, split sizes).
    pub fn i64_const(&mut self, name: &str, values: &[i64]) -> Value {
        let name = format!("{name}_{}", self.next_id);
        self.next_id += 1;
        self.initializers.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: DataType::Int64 as i32,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            name: name.clone(),
            ..Default::default()
        });
        name
    }

    /// A convolution whose BatchNorm is already folded in (`Conv` with weight and bias initializers named
    /// `{name}.weight` / `{name}.bias`).
    pub fn conv(&mut self, name: &str, x: &str, conv: &FusedConv) -> Value {
        let weight = self.float_const(&format!("{name}.weight"), &conv.weight_shape, &conv.weight);
        let bias = self.float_const(&format!("{name}.bias"), &[conv.bias.len()], &conv.bias);
        let [_, _, kh, kw] = conv.weight_shape;
        let attrs = vec![
            ints("kernel_shape", &[kh as i64, kw as i64]),
            ints("strides", &conv.stride.map(|s| s as i64)),
            ints("pads", &conv.pads.map(|p| p as i64)),
            ints("dilations", &[1, 1]),
            int("group", conv.groups as i64),
        ];
        self.single("Conv", &[x, &weight, &bias], attrs)
    }

    /// SiLU as `x · sigmoid(x)`: TensorRT 8.5 has no SiLU importer, and its fusion recognises this pattern.
    pub fn silu(&mut self, x: &str) -> Value {
        let s = self.sigmoid(x);
        self.mul(x, &s)
    }

    pub fn sigmoid(&mut self, x: &str) -> Value {
        self.single("Sigmoid", &[x], vec![])
    }

    pub fn add(&mut self, a: &str, b: &str) -> Value {
        self.single("Add", &[a, b], vec![])
    }

    pub fn sub(&mut self, a: &str, b: &str) -> Value {
        self.single("Sub", &[a, b], vec![])
    }

    pub fn mul(&mut self, a: &str, b: &str) -> Value {
        self.single("Mul", &[a, b], vec![])
    }

    pub fn div(&mut self, a: &str, b: &str) -> Value {
        self.single("Div", &[a, b], vec![])
    }

    pub fn matmul(&mut self, a: &str, b: &str) -> Value {
        self.single("MatMul", &[a, b], vec![])
    }

    pub fn concat(&mut self, xs: &[&str], axis: i64) -> Value {
        self.single("Concat", xs, vec![int("axis", axis)])
    }

    /// `Split` along `axis` into pieces of `sizes` (opset 13+: sizes as an int64 input).
    pub fn split(&mut self, x: &str, axis: i64, sizes: &[usize]) -> Vec<Value> {
        let sizes: Vec<i64> = sizes.iter().map(|&s| s as i64).collect();
        let split = self.i64_const("split", &sizes);
        self.node("Split", &[x, &split], sizes.len(), vec![int("axis", axis)])
    }

    /// `Reshape`; a 0 in `shape` copies that input dimension (the batch, when it is dynamic).
    pub fn reshape(&mut self, x: &str, shape: &[i64]) -> Value {
        let shape = self.i64_const("shape", shape);
        self.single("Reshape", &[x, &shape], vec![])
    }

    pub fn transpose(&mut self, x: &str, perm: &[i64]) -> Value {
        self.single("Transpose", &[x], vec![ints("perm", perm)])
    }

    /// Softmax over one axis (opset 13 semantics).
    pub fn softmax(&mut self, x: &str, axis: i64) -> Value {
        self.single("Softmax", &[x], vec![int("axis", axis)])
    }

    /// `MaxPool` k×k, stride 1, padding k/2: padded positions never win, as PyTorch's −∞ padding.
    pub fn max_pool(&mut self, x: &str, k: usize) -> Value {
        let (k, p) = (k as i64, (k / 2) as i64);
        let attrs = vec![
            ints("kernel_shape", &[k, k]),
            ints("strides", &[1, 1]),
            ints("pads", &[p, p, p, p]),
        ];
        self.single("MaxPool", &[x], attrs)
    }

    /// Nearest-neighbour upsampling by an integer factor: `Resize` with `scales`, in the `asymmetric` /
    /// `floor` mode that `torch.onnx` writes for `nn.Upsample(mode="nearest")`, so output pixel i reads i / f.
    pub fn upsample_nearest(&mut self, x: &str, factor: usize) -> Value {
        let f = factor as f32;
        let scales = format!("upsample_scales_{}", self.next_id);
        self.next_id += 1;
        let scales = self.f32_const(&scales, &[4], &[1.0, 1.0, f, f]);
        let attrs = vec![
            string("mode", "nearest"),
            string("coordinate_transformation_mode", "asymmetric"),
            string("nearest_mode", "floor"),
        ];
        self.single("Resize", &[x, "", &scales], attrs)
    }

    /// `ReduceMax` over `axes`, keeping them (opset ≤ 17: axes as an attribute).
    pub fn reduce_max_keepdims(&mut self, x: &str, axes: &[i64]) -> Value {
        self.single(
            "ReduceMax",
            &[x],
            vec![ints("axes", axes), int("keepdims", 1)],
        )
    }

    /// `ArgMax` over `axis`, kept; int64 output.
    pub fn argmax_keepdims(&mut self, x: &str, axis: i64) -> Value {
        self.single("ArgMax", &[x], vec![int("axis", axis), int("keepdims", 1)])
    }

    /// `Cast` to an ONNX data type code.
    pub fn cast(&mut self, x: &str, to: i32) -> Value {
        self.single("Cast", &[x], vec![int("to", to as i64)])
    }
}

/// A float tensor stored as little-endian `raw_data` in f32 or f16 (rounded to nearest).
pub fn float_tensor(name: &str, dims: &[usize], values: &[f32], ty: FloatType) -> TensorProto {
    let raw_data = match ty {
        FloatType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        FloatType::F16 => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
    };
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: ty.onnx(),
        raw_data,
        name: name.into(),
        ..Default::default()
    }
}

pub fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

pub fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f,
        ..Default::default()
    }
}

pub fn ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

pub fn string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}
