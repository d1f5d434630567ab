// `chats <accountId>`: an account's chats, latest first, as the REST route lists them (the first page
// of 50), found by account id alone like `qr` and `send`.
import { callAccounts } from "../accounts/calls.ts";
import type { ChatSummary } from "../engines/directory.ts";
import { formatTable, terminalLine, type Column } from "./table.ts";
import type { ReplIO } from "./commands.ts";

const CHAT_COLUMNS: Column<ChatSummary>[] = [
  { title: "chat", value: (c) => c.id },
  { title: "name", value: (c) => c.name },
  { title: "unread", value: (c) => c.unreadCount, right: true },
  { title: "last", value: (c) => (c.timestamp ? new Date(c.timestamp * 1000).toISOString() : null) },
  {
    title: "last message",
    value: (c) => c.lastMessage && `${c.lastMessage.fromMe ? "→ " : "← "}${c.lastMessage.text}`.slice(0, 60),
  },
];

export async function chatsCommand({ broker, print }: ReplIO, accountId: string): Promise<void> {
  const account = await callAccounts(broker, "lookup", { accountId });
  const page = await callAccounts(broker, "chats", { workspaceId: account.workspaceId, accountId });
  if (!page.items.length) {
    print(terminalLine`account ${accountId} (workspace ${account.workspaceId}) has no chats`);
    return;
  }
  print(formatTable(CHAT_COLUMNS, page.items));
  const more = page.nextCursor ? " (more: GET …/chats?cursor=" + page.nextCursor + ")" : "";
  print(
    terminalLine`${page.items.length} chat(s) of account ${accountId} (workspace ${account.workspaceId})${more}`,
  );
}
