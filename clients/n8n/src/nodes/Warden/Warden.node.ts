// The Warden node: locks, idempotency, rate limits, incidents and fences as workflow steps.
// Idempotency begin and rate-limit check branch on two outputs, so a workflow never runs a
// completed side effect twice nor sends past a limit.

import type {
  IExecuteFunctions,
  INodeExecutionData,
  INodeProperties,
  INodeType,
  INodeTypeDescription,
} from "n8n-workflow";
import { Warden as Client } from "../../client/index.js";
import { configuredOutputs, run } from "./operations.js";

const show = (resource: string, operation: string[]) => ({ show: { resource: [resource], operation } });
const field = (
  name: string,
  displayName: string,
  type: "string" | "number" | "json" | "options",
  where: ReturnType<typeof show>,
  extra: Partial<INodeProperties> = {},
): INodeProperties =>
  ({
    displayName,
    name,
    type,
    default: type === "number" ? 0 : "",
    displayOptions: where,
    ...extra,
  }) as INodeProperties;

const ops = (resource: string, list: [string, string][]): INodeProperties => ({
  displayName: "Operation",
  name: "operation",
  type: "options",
  noDataExpression: true,
  displayOptions: { show: { resource: [resource] } },
  options: list.map(([value, name]) => ({ name, value, action: `${name} (${resource})` })),
  default: list[0][0],
});

const lock = ["acquire", "extend", "release"];
const properties: INodeProperties[] = [
  {
    displayName: "Resource",
    name: "resource",
    type: "options",
    noDataExpression: true,
    options: [
      { name: "Lock", value: "lock" },
      { name: "Idempotency", value: "idempotency" },
      { name: "Rate Limit", value: "rateLimit" },
      { name: "Incident", value: "incident" },
      { name: "Fence", value: "fence" },
    ],
    default: "lock",
  },
  ops("lock", [["acquire", "Acquire"], ["extend", "Extend"], ["release", "Release"]]),
  ops("idempotency", [["begin", "Begin"], ["complete", "Complete"], ["fail", "Fail"]]),
  ops("rateLimit", [["check", "Check"]]),
  ops("incident", [["trigger", "Trigger"], ["acknowledge", "Acknowledge"]]),
  ops("fence", [["check", "Check"]]),
  field("key", "Key", "string", show("lock", lock), { required: true }),
  field("owner", "Owner", "string", show("lock", lock), { required: true, description: "Who holds the lease (for example the execution ID)" }),
  field("ttlMs", "TTL (ms)", "number", show("lock", ["acquire", "extend"]), { default: 30_000 }),
  field("waitMs", "Wait (ms)", "number", show("lock", ["acquire"]), { description: "Wait in line this long when busy (0: fail at once)" }),
  field("fencingToken", "Fencing Token", "number", show("lock", ["extend", "release"]), { required: true }),
  field("key", "Key", "string", show("idempotency", ["begin", "complete", "fail"]), { required: true }),
  field("fingerprint", "Fingerprint", "string", show("idempotency", ["begin"]), { description: "A hash of the request: the same key with another fingerprint is refused" }),
  field("leaseMs", "Lease (ms)", "number", show("idempotency", ["begin"]), { default: 30_000 }),
  field("waitMs", "Wait (ms)", "number", show("idempotency", ["begin"]), { description: "Wait for another run of the key to finish" }),
  field("token", "Token", "number", show("idempotency", ["complete", "fail"]), { required: true, description: "The token Begin answered" }),
  field("response", "Response", "json", show("idempotency", ["complete"]), { default: "{}", description: "What later runs of the key get back" }),
  field("policy", "Policy", "string", show("rateLimit", ["check"]), { required: true }),
  field("subject", "Subject", "string", show("rateLimit", ["check"]), { required: true }),
  field("cost", "Cost", "number", show("rateLimit", ["check"]), { default: 1 }),
  field("dedupKey", "Dedup Key", "string", show("incident", ["trigger"])),
  field("severity", "Severity", "options", show("incident", ["trigger"]), {
    options: ["critical", "error", "warning", "info"].map((v) => ({ name: v, value: v })),
    default: "critical",
  }),
  field("summary", "Summary", "string", show("incident", ["trigger"]), { required: true }),
  field("source", "Source", "string", show("incident", ["trigger"]), { default: "n8n" }),
  field("details", "Details", "json", show("incident", ["trigger"]), { default: "{}" }),
  field("incidentId", "Incident ID", "string", show("incident", ["acknowledge"]), { required: true }),
  field("fenceResource", "Protected Resource", "string", show("fence", ["check"]), { required: true, description: "What the side effect writes to" }),
  field("token", "Token", "number", show("fence", ["check"]), { required: true, description: "The lock's fencing token" }),
];

export class Warden implements INodeType {
  description: INodeTypeDescription = {
    displayName: "Warden",
    name: "warden",
    icon: "file:warden.svg",
    group: ["transform"],
    version: 1,
    subtitle: '={{$parameter["operation"] + ": " + $parameter["resource"]}}',
    description: "Fenced locks, idempotency, rate limits, fences and incidents from Warden",
    defaults: { name: "Warden" },
    inputs: ["main"],
    outputs: `={{(${configuredOutputs})($parameter)}}`,
    credentials: [{ name: "wardenApi", required: true }],
    properties,
  };

  async execute(this: IExecuteFunctions): Promise<INodeExecutionData[][]> {
    const items = this.getInputData();
    const credentials = await this.getCredentials("wardenApi");
    const client = new Client({
      baseUrl: String(credentials.baseUrl),
      token: credentials.token ? String(credentials.token) : undefined,
    });
    const resource = this.getNodeParameter("resource", 0) as string;
    const operation = this.getNodeParameter("operation", 0) as string;
    const out: INodeExecutionData[][] = configuredOutputs({ resource, operation }).map(() => []);
    for (let i = 0; i < items.length; i++) {
      try {
        const [output, json] = await run(client, resource, operation, (name) => this.getNodeParameter(name, i));
        out[output].push({ json: json as INodeExecutionData["json"], pairedItem: { item: i } });
      } catch (error) {
        if (!this.continueOnFail()) throw error;
        const e = error as { message?: string; code?: string; status?: number; correlationId?: string };
        out[0].push({
          json: { error: e.message ?? String(error), code: e.code, status: e.status, correlationId: e.correlationId },
          pairedItem: { item: i },
        });
      }
    }
    return out;
  }
}
