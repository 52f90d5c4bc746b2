/**
 * Driving a run from Node: LoRA on the tiny local model and the demo data, every event streamed to a JSONL file, and
 * the run stopped early once the eval loss rises, or after --max-steps steps.
 *
 *   npm run build:lib      # dist/lib, what `import ... from 'dataflex-ts'` loads (docs/node-api.md)
 *   npx tsx examples/node_api.ts events.jsonl [--output-dir runs/node_api] [--max-steps 8]
 *
 * Run from anywhere: the model and data paths are this checkout's. A stopped run finishes as an early-stopped one
 * does (the model saved, a final evaluation, dataflex/summary.json), and the last line of the JSONL file is the
 * `done` event with its summary.
 */
import { createWriteStream } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { train, type TrainEvent } from 'dataflex-ts'

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { 'output-dir': { type: 'string', default: 'runs/node_api' }, 'max-steps': { type: 'string', default: '8' } },
})
const eventsFile = positionals[0] ?? 'node_api_events.jsonl'
const maxSteps = Number(values['max-steps'])
const repo = (rel: string): string => fileURLToPath(new URL(`../${rel}`, import.meta.url))

const run = train({
  model_name_or_path: repo('models/tiny-qwen2'),
  stage: 'sft',
  do_train: true,
  finetuning_type: 'lora',
  lora_rank: 4,
  lora_target: 'all',
  dataset_dir: repo('data/demo'),
  dataset: 'arith_clean,facts',
  eval_dataset: 'demo_eval',
  template: 'qwen',
  cutoff_len: 128,
  max_samples: 32,
  output_dir: values['output-dir'],
  overwrite_output_dir: true,
  report_to: 'none',
  per_device_train_batch_size: 4,
  gradient_accumulation_steps: 2,
  learning_rate: 5.0e-3,
  num_train_epochs: 10,
  logging_steps: 1,
  eval_strategy: 'steps',
  eval_steps: 2,
  per_device_eval_batch_size: 16,
  save_steps: 4,
})

// Listeners run as the run records each event, so a stop from one takes effect before the next step starts.
let best = Infinity
run.on('eval', (e) => {
  if (e.at !== 'step') return
  if (e.evalLoss > best) {
    console.log(`eval loss rose at step ${e.step} (${e.evalLoss.toFixed(4)} > ${best.toFixed(4)}): stopping`)
    run.stop()
  }
  best = Math.min(best, e.evalLoss)
})
run.on('step', (e) => {
  if (e.step >= maxSteps) run.stop()
})
run.on('log', (e) => console.log(e.message))

/** One JSON line per event; an error keeps its name, code and message. */
function line(e: TrainEvent): string {
  if (e.type !== 'error') return JSON.stringify(e)
  const { name, message } = e.error
  return JSON.stringify({ type: e.type, error: { name, message, code: (e.error as { code?: unknown }).code } })
}

const out = createWriteStream(eventsFile)
for await (const event of run) out.write(line(event) + '\n')
await new Promise((resolve) => out.end(resolve))

try {
  const summary = await run.result
  console.log(`${summary.status}: ${summary.steps} steps, eval loss ${summary.evalLoss?.toFixed(4) ?? 'n/a'}, output ${summary.outputDir}`)
} catch (err) {
  console.error(`the run failed: ${err instanceof Error ? err.message : String(err)}`)
  process.exitCode = 1
}
