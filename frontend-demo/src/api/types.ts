// Shapes of the sluice public API (CONTRACT.md section 4), as the browser sees them.

/** `GET /api/me`: who the auth cookie belongs to. */
export interface Me {
  sub: string;
  [extra: string]: unknown;
}

/** Where a scenario's passages came from; anything but `ai` means the AI search was not used. */
export type PassagesSource = 'ai' | 'cache' | 'fallback';

/** `POST /api/scenarios` → 201. */
export interface Scenario {
  id: string;
  novel_id: string;
  description: string;
  passage_ids: string[];
  passages_source: PassagesSource;
  created_at: string;
}

/** Lifecycle of a conversation while the AI service generates it. */
export type ConversationStatus = 'pending' | 'generating' | 'completed' | 'failed';

/** One row of `GET /api/conversations` (the same shape as `GET /api/conversations/{id}`). */
export interface ConversationSummary {
  id: string;
  scenario_id: string;
  status: ConversationStatus;
  progress?: number;
  status_message?: string | null;
  error?: string | null;
  created_at: string;
  completed_at?: string | null;
}

/** Stored state of one chat message. */
export type MessageStatus = 'completed' | 'interrupted' | 'failed';

/** One item of `GET /api/conversations/{id}/messages`, oldest first. */
export interface StoredMessage {
  id: string;
  role: 'user' | 'assistant';
  content: string;
  status: MessageStatus;
  created_at: string;
}

/** `event: progress` of the conversation progress stream. */
export interface ProgressEventData {
  conversation_id: string;
  progress: number;
  message: string;
}

/** `event: complete` of the conversation progress stream. */
export interface CompleteEventData {
  conversation_id: string;
  status: 'completed';
  message_count: number;
}

/** `event: error` of the conversation progress stream. */
export interface ConversationErrorEventData {
  conversation_id: string;
  code: string;
  message: string;
}

/** `event: token` of the message stream: one piece of the assistant's answer. */
export interface TokenEventData {
  content: string;
}

/** `event: complete` of the message stream: the stored assistant message. */
export interface MessageCompleteEventData {
  message_id: string;
  content: string;
}

/** `event: error` of the message stream. */
export interface MessageErrorEventData {
  code: string;
  message: string;
}
