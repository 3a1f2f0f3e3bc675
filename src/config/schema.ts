/**
 * Every environment variable prefixd reads: one schema, with its default and a
 * one-line description. The README's configuration table is generated from it
 * (`prefixd config` prints it), so the two cannot drift.
 */
import Type, { type Static } from 'typebox'

const int = (def: number, minimum: number, description: string, maximum?: number) =>
  Type.Integer({ default: def, minimum, ...(maximum !== undefined ? { maximum } : {}), description })

export const ConfigSchema = Type.Object({
  HOST: Type.String({ default: '0.0.0.0', description: 'Address the HTTP server listens on.' }),
  PORT: int(8080, 0, 'TCP port of the HTTP server (0 picks a free one).', 65535),
  METRICS_PORT: int(0, 0, 'TCP port of a separate listener that serves only /metrics, on HOST (0: /metrics is served on PORT with the API). Metric labels name prefix ids and tenants: keep this port private.', 65535),
  LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    default: 'info',
    description: 'pino log level.',
  }),
  MODEL_DIR: Type.String({
    default: '',
    description: 'Model folder in the Hugging Face optimum ONNX layout. Empty: the stories260K model shipped in src/models/stories260K.',
  }),
  MODEL_ID: Type.String({ default: '', description: 'Name reported for the base model (default: the model folder name).' }),
  CACHE_DIR: Type.String({ default: '.cache/prefixd', description: 'Unused since the default model ships in src/models/stories260K; still accepted so deployments that set it keep starting.' }),
  PREFIX_DIR: Type.String({ default: 'prefixes', description: 'Prefix store folder: one sub-folder per prefix id (PEFT adapter or native file).' }),
  MAX_PREFIX_FILE_BYTES: int(64 * 1024 * 1024, 1, 'Largest prefix file accepted, in bytes.'),
  REDIS_URL: Type.String({
    default: '',
    description: 'Redis holding the prefix index, a copy of every blob and change notices (redis://host:6379/0). Empty: an embedded single-node index under PREFIX_DIR/.store.',
  }),
  PREFIX_CACHE_BYTES: int(256 * 1024 * 1024, 1, 'Memory budget of materialized prefixes (key/value floats) held by the engine; least recently used ones are dropped beyond it.'),
  PREFIX_RECHECK_MS: int(500, 50, 'How often each replica re-checks the index for changes it may have missed on the pub/sub channel, in milliseconds.'),
  STORE_TIMEOUT_MS: int(2000, 50, 'Longest wait for one Redis command before the request fails with 503 store_unavailable, in milliseconds.'),
  EXECUTION_PROVIDER: Type.Enum(['cpu', 'cuda'], {
    default: 'cpu',
    description: 'ONNX Runtime execution provider: cpu, or cuda on a GPU host (needs the CUDA build of onnxruntime-node).',
  }),
  LORA_TARGET_MODULES: Type.String({
    default: 'peft',
    pattern: '^(peft|all|none|[A-Za-z0-9_.]+(,[A-Za-z0-9_.]+)*)$',
    description:
      "Projections LoRA adapters may target: peft (PEFT's default target modules for the model type, e.g. q_proj,v_proj for Llama, c_attn for GPT-2), all (every projection the model has), none (serve no LoRA; the model loads as is), or leaf module names, comma-separated. Each one costs every forward pass a little, LoRA rows or not.",
  }),
  ORT_BINDING: Type.Enum(['auto', 'capi', 'node'], {
    default: 'auto',
    description:
      "How the engine drives ONNX Runtime: capi (its C API, through koffi, on onnxruntime-node's own library: decode passes write the key/value cache in place; CPU only), node (onnxruntime-node), or auto (capi on the CPU where it loads, else node).",
  }),
  INTRA_OP_THREADS: int(0, 0, 'ONNX Runtime intra-op threads (0: ONNX Runtime chooses, one per core).'),
  MAX_BATCH_SIZE: int(16, 1, 'Most requests in one forward pass.', 1024),
  MAX_BATCH_TOKENS: int(16384, 1, 'Most key/value positions (prefix + prompt + new tokens) held by the running batch.'),
  MAX_PREFILL_TOKENS: int(4096, 1, 'Most prompt and prefix tokens admitted into one prefill pass.'),
  ADMISSION_WAIT_MS: int(10, 0, 'When no request is running, the first to arrive waits while others keep arriving (until none came for 2 ms), at most this long, so that requests sent together start as one prefill pass, in milliseconds (0: no wait). An engine with running requests never waits: newcomers join at its next step.', 1000),
  MAX_WAITING_REQUESTS: int(256, 0, 'Requests allowed to wait for a batch slot; beyond it new ones get 429.'),
  MAX_WAITING_PER_TENANT: int(64, 0, 'Waiting requests one tenant may hold, so a flood cannot fill the queue for everyone.'),
  RATE_LIMIT_PER_MINUTE: int(0, 0, 'Requests per minute per tenant (0: no limit); shared across replicas through Redis when REDIS_URL is set.'),
  TENANT_MAX_PREFIXES: int(1000, 1, 'Most prefixes one tenant may store.'),
  TENANT_MAX_PREFIX_BYTES: int(1024 * 1024 * 1024, 1, 'Most bytes of prefix files one tenant may store.'),
  REQUEST_TIMEOUT_MS: int(120000, 1, 'Deadline for a request, waiting and generating, in milliseconds.'),
  DEFAULT_MAX_NEW_TOKENS: int(64, 1, 'max_new_tokens when a request gives none.'),
  MAX_INPUT_CHARS: int(65536, 1, 'Longest prompt accepted, in characters.'),
  MAX_STOP_SEQUENCES: int(8, 0, 'Most stop sequences one request may give.'),
  BODY_LIMIT_BYTES: int(1024 * 1024, 1024, 'Largest JSON request body, in bytes.'),
  HEADERS_TIMEOUT_MS: int(10000, 100, 'Longest a client may take to send its request headers, in milliseconds; then the connection is closed (408).'),
  REQUEST_READ_TIMEOUT_MS: int(60000, 100, 'Longest a client may take to send a whole request, headers and body (an upload included), in milliseconds; then 408 and the connection is closed. Generating the answer is not counted.'),
  KEEP_ALIVE_TIMEOUT_MS: int(5000, 100, 'How long an idle keep-alive connection stays open between requests, in milliseconds.'),
  MAX_CONNECTIONS: int(768, 1, 'Most open client connections (keep it under the open-file limit); beyond it new connections are closed at once.'),
  MAX_CONNECTIONS_PER_CLIENT: int(64, 0, 'Most open connections from one client address, so that one client cannot take every connection and the health probes stay answerable (0: no per-client limit; behind a proxy every client is the proxy).'),
  API_KEYS: Type.String({ default: '', description: 'API keys as comma-separated tenant:role:sha256 entries (role admin or tenant; sha256 of the key, hex). Empty with no file: the server runs open.' }),
  API_KEYS_FILE: Type.String({ default: '', description: 'JSON file of API keys: [{"tenant", "role", "sha256"}]. `prefixd keys new` makes one.' }),
  PREFIX_LABEL_LIMIT: int(100, 1, 'Most distinct prefix label values in metrics (the most used); the rest count as __other__.'),
  LOG_PROMPTS: Type.Boolean({ default: false, description: 'Log prompt text (at debug level only). Off: prompts never reach the logs.' }),
  SHUTDOWN_TIMEOUT_MS: int(30000, 0, 'How long in-flight requests may run after SIGTERM before the process exits anyway.'),
})

export type Config = Static<typeof ConfigSchema>
