/**
 * `maieutic info`: the WebGPU adapter (name, vendor, software or not), the features we use, the limits we
 * rely on, and the resolved configuration. `--json` prints one object.
 */
import { CONFIG_HELP, CONFIG_OPTIONS, configFromArgs, parse } from "./args.ts";
import { getGpu, RELIED_LIMITS, WANTED_FEATURES } from "../gpu/device.ts";
import { libraryVariants } from "../gpu/kernel.ts";
import { describeModel } from "../hub/load.ts";

const USAGE = "maieutic info [--json] [config flags]";

export async function run(args: string[]): Promise<number> {
  const { values } = parse(args, { ...CONFIG_OPTIONS, json: { type: "boolean" } }, USAGE);
  if (values.help) {
    console.log(
      `${USAGE}\n\nPrints the WebGPU adapter, features, limits and the resolved config.\n\n${CONFIG_HELP}`,
    );
    return 0;
  }
  const config = configFromArgs(values);
  const gpu = await getGpu();
  // The model is described only when asked for (--model): the default is a gated Hub download.
  const model = typeof values.model === "string"
    ? await describeModel(config.model.name, config.quantization, { progress: false })
    : null;
  const features = Object.fromEntries(
    WANTED_FEATURES.map((f) => [f, gpu.device.features.has(f as GPUFeatureName)]),
  );
  const limits = Object.fromEntries(
    RELIED_LIMITS.map((k) => [k, (gpu.limits as unknown as Record<string, number>)[k]]),
  );
  const info = {
    adapter: {
      ...gpu.info,
      software: gpu.isSoftware,
      backend: gpu.backend,
      backend_chosen_by: gpu.backendChoice.how,
      backend_probes: gpu.backendChoice.probes,
      calibration_gflops: gpu.calibration ? Number(gpu.calibration.gflops.toFixed(3)) : null,
    },
    features,
    limits,
    compute: {
      matmul_operands: config.quantization.bnb_4bit_compute_dtype === "float16" && gpu.f16 ? "f16" : "f32",
      accumulation: "f32",
      // kernels/lib/*: subgroup operations when the device has them (MAIEUTIC_SUBGROUPS=0: the fallbacks)
      libraries: libraryVariants(gpu),
      subgroup_sizes: gpu.subgroupSizes,
    },
    model: model
      ? {
        source: model.source,
        revision: model.revision ?? null,
        dir: model.dir,
        random_weights: model.randomWeights,
        cache: model.cachePath ?? null,
        tensors: model.names.length,
        config: model.config,
      }
      : null,
    config,
  };
  if (values.json) {
    console.log(JSON.stringify(info, null, 2));
    return 0;
  }
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
  console.log(
    `adapter   ${gpu.info.description || gpu.info.vendor} (vendor ${gpu.info.vendor}${
      gpu.info.architecture ? `, ${gpu.info.architecture}` : ""
    })${gpu.isSoftware ? "  [software adapter: correct but slow]" : ""}`,
  );
  const probes = gpu.backendChoice.probes.map((p) => `${p.backend}: ${p.adapter ?? "none"}`).join("; ");
  console.log(
    `backend   ${gpu.backend ?? "default"} (${
      gpu.backendChoice.how === "auto"
        ? "auto: Vulkan, Metal, DX12 before GL"
        : `set by ${gpu.backendChoice.how}`
    }${probes ? `; probed ${probes}` : ""}; MAIEUTIC_BACKEND=vulkan|metal|dx12|gl forces one)`,
  );
  if (gpu.calibration) {
    console.log(
      `calibration ${gpu.calibration.gflops.toFixed(2)} GFLOP/s (kernels/calibrate.wgsl, wall clock)`,
    );
  }
  console.log(`features  ${Object.entries(features).map(([k, v]) => `${k}:${v ? "yes" : "no"}`).join("  ")}`);
  console.log("limits");
  for (const [k, v] of Object.entries(limits)) {
    console.log(`  ${k.padEnd(36)}${/Size$/.test(k) && v >= 2 ** 20 ? mib(v) : v}`);
  }
  const sizes = gpu.subgroupSizes;
  console.log(
    `compute   matmul operands ${info.compute.matmul_operands}, accumulation f32; subgroup operations in ${
      Object.entries(info.compute.libraries).filter(([, v]) => v === "subgroup").map(([k]) => k).join(", ") ||
      "none"
    }` + (gpu.subgroups && sizes
      ? ` (subgroups of ${sizes.min === sizes.max ? sizes.min : `${sizes.min}-${sizes.max}`})`
      : ""),
  );
  if (info.model) {
    const c = info.model.config;
    console.log(
      `model     ${info.model.source}${info.model.revision ? `@${info.model.revision}` : ""}${
        info.model.random_weights ? " (random weights, made on the GPU)" : ""
      }`,
    );
    console.log(
      `  ${c.num_hidden_layers} layers, hidden ${c.hidden_size}, intermediate ${c.intermediate_size}, heads ${c.num_attention_heads}/${c.num_key_value_heads} kv, head_dim ${c.head_dim}, vocab ${c.vocab_size}, sliding window ${c.sliding_window}`,
    );
    if (info.model.dir) console.log(`  files ${info.model.dir}`);
    if (info.model.cache) console.log(`  quantized cache ${info.model.cache}`);
  }
  console.log("config");
  console.log(JSON.stringify(config, null, 2).split("\n").map((l) => "  " + l).join("\n"));
  return 0;
}
