// `npm run ops:schema`: export the op catalog (src/bridge/ops.ts) to python_bridge/dataflex_bridge/ops.schema.json.
import { OPS_SCHEMA_PATH, writeOpsSchema } from '../src/bridge/ops-schema.ts'

writeOpsSchema()
console.log(`wrote ${OPS_SCHEMA_PATH}`)
