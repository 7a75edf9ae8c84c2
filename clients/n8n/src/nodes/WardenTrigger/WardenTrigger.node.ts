// Starts a workflow from Warden's notifications (incident triggered, repeated, acknowledged,
// resolved; safe mode entered and exited; the contingency message; the next-shift ticket),
// only for deliveries whose Standard Webhooks signature verifies with the signing secret.

import type { INodeType, INodeTypeDescription, IWebhookFunctions, IWebhookResponseData } from "n8n-workflow";
import { verify } from "./verify.js";

const EVENTS = [
  "incident.triggered",
  "incident.notify",
  "incident.acknowledged",
  "incident.resolved",
  "guard.safe_mode_entered",
  "guard.contingency",
  "guard.safe_mode_exited",
  "ticket.next_shift",
];

export class WardenTrigger implements INodeType {
  description: INodeTypeDescription = {
    displayName: "Warden Trigger",
    name: "wardenTrigger",
    icon: "file:warden.svg",
    group: ["trigger"],
    version: 1,
    description: "Starts the workflow on Warden's signed notifications",
    defaults: { name: "Warden Trigger" },
    inputs: [],
    outputs: ["main"],
    webhooks: [{ name: "default", httpMethod: "POST", responseMode: "onReceived", path: "warden" }],
    properties: [
      {
        displayName: "Signing Secret",
        name: "secret",
        type: "string",
        typeOptions: { password: true },
        default: "",
        required: true,
        description: "The whsec_… secret Warden signs with (notify.owner_secret or notify.superadmin_secret)",
      },
      {
        displayName: "Events",
        name: "events",
        type: "multiOptions",
        options: EVENTS.map((e) => ({ name: e, value: e })),
        default: [],
        description: "Only these events start the workflow (none selected: every event)",
      },
      {
        displayName: "Tolerance (s)",
        name: "toleranceSeconds",
        type: "number",
        default: 300,
        description: "How old a delivery may be; older ones are refused as replays",
      },
    ],
  };

  async webhook(this: IWebhookFunctions): Promise<IWebhookResponseData> {
    const req = this.getRequestObject() as unknown as { rawBody?: Buffer; body?: unknown };
    const res = this.getResponseObject();
    const secret = this.getNodeParameter("secret") as string;
    const events = this.getNodeParameter("events", []) as string[];
    const tolerance = this.getNodeParameter("toleranceSeconds", 300) as number;
    const raw = req.rawBody ? req.rawBody.toString("utf8") : JSON.stringify(req.body ?? {});
    const refused = verify(secret, this.getHeaderData() as Record<string, string>, raw, undefined, tolerance);
    if (refused) {
      res.status(401).json({ error: `signature refused: ${refused}` });
      return { noWebhookResponse: true };
    }
    const body = JSON.parse(raw) as { type?: string };
    if (events.length > 0 && !events.includes(String(body.type))) {
      return { webhookResponse: { state: "ignored" } };
    }
    const headers = this.getHeaderData();
    return {
      workflowData: [[{ json: { ...body, webhook_id: headers["webhook-id"] } }]],
    };
  }
}
