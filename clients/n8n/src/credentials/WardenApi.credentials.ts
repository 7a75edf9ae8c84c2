// The credential of the Warden nodes: where Warden listens and a bearer token; n8n tests it
// with GET /v1/status.

import type { IAuthenticateGeneric, ICredentialTestRequest, ICredentialType, INodeProperties } from "n8n-workflow";

export class WardenApi implements ICredentialType {
  name = "wardenApi";
  displayName = "Warden API";
  documentationUrl = "https://github.com/warden/warden/tree/main/clients/n8n";
  properties: INodeProperties[] = [
    {
      displayName: "Base URL",
      name: "baseUrl",
      type: "string",
      default: "http://127.0.0.1:8080",
      placeholder: "https://warden.internal:8080",
      required: true,
    },
    {
      displayName: "Token",
      name: "token",
      type: "string",
      typeOptions: { password: true },
      default: "",
      description: "A token from `warden token create` (empty: loopback in protected mode only)",
    },
  ];
  authenticate: IAuthenticateGeneric = {
    type: "generic",
    properties: { headers: { Authorization: "=Bearer {{$credentials.token}}" } },
  };
  test: ICredentialTestRequest = {
    request: { baseURL: "={{$credentials.baseUrl}}", url: "/v1/status" },
  };
}
