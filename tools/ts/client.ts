// A small typed client over the types that openapi-typescript generates from
// openapi/palo-v1.yaml (`make types-check` generates them into build/ts and
// type-checks this file). It is what a partner's TypeScript code looks like:
// if the document changes a shape this code relies on, it stops compiling.
import type { components, operations } from "../../build/ts/palo-v1";

type Schemas = components["schemas"];
type Json<Op extends keyof operations, Status extends number> =
  operations[Op]["responses"] extends Record<Status, { content: { "application/json": infer Body } }>
    ? Body
    : never;

export type Project = Json<"create_project", 201>;
export type Ticket = Json<"create_ticket", 201>;
export type TicketDetail = Json<"get_ticket", 200>;
export type TicketList = Json<"list_tickets", 200>;
export type Comment = Json<"create_ticket_comment", 201>;
export type ApiError = Schemas["Error"];
export type TicketQuery = NonNullable<operations["list_tickets"]["parameters"]["query"]>;

export class PaloError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiError,
  ) {
    super(`${status} ${body.error}: ${body.message}`);
  }
}

export class PaloClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  static async authenticate(baseUrl: string, clientId: string, clientSecret: string): Promise<PaloClient> {
    const body: Schemas["TokenRequest"] = { client_id: clientId, client_secret: clientSecret };
    const response = await fetch(`${baseUrl}/auth/token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new PaloError(response.status, (await response.json()) as ApiError);
    const token = (await response.json()) as Json<"create_token", 200>;
    return new PaloClient(baseUrl, token.access_token);
  }

  createProject(project: Schemas["ProjectCreate"]): Promise<Project> {
    return this.call("POST", "/projects", project);
  }

  createTicket(ticket: Schemas["TicketCreate"]): Promise<Ticket> {
    return this.call("POST", "/tickets", ticket);
  }

  listTickets(query: TicketQuery = {}): Promise<TicketList> {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined) search.set(name, String(value));
    }
    return this.call("GET", `/tickets?${search}`);
  }

  updateTicket(ticketId: string, change: Schemas["TicketUpdate"]): Promise<Ticket> {
    return this.call("PATCH", `/tickets/${ticketId}`, change);
  }

  comment(ticketId: string, comment: Schemas["CommentCreate"]): Promise<Comment> {
    return this.call("POST", `/tickets/${ticketId}/comments`, comment);
  }

  getTicket(ticketId: string): Promise<TicketDetail> {
    return this.call("GET", `/tickets/${ticketId}`);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/json" },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const payload: unknown = await response.json();
    if (!response.ok) throw new PaloError(response.status, payload as ApiError);
    return payload as T;
  }
}

// What a partner writes against the types, resolved at compile time only.
export async function triage(client: PaloClient, projectId: string): Promise<string[]> {
  const urgent = await client.listTickets({ project_id: projectId, priority: "p1", status: "open" });
  const titles: string[] = [];
  for (const ticket of urgent.data) {
    const updated = await client.updateTicket(ticket.id, { status: "in_progress", assignee_id: null });
    const history = (await client.getTicket(updated.id)).history.map((event) => event.action);
    titles.push(`${updated.title} (${updated.priority}, ${history.length} events)`);
  }
  if (urgent.pagination.has_more) titles.push(`and ${urgent.pagination.total - urgent.data.length} more`);
  return titles;
}

// The types are exact: values outside the document do not compile.
// @ts-expect-error `p9` is not a priority.
export const wrongPriority: Schemas["TicketCreate"] = { title: "t", project_id: "p", priority: "p9" };
// @ts-expect-error a ticket has no `severity` field.
export const unknownField: Schemas["TicketUpdate"] = { severity: "high" };
// @ts-expect-error `title` is required.
export const missingTitle: Schemas["TicketCreate"] = { project_id: "p" };
