/** Edit requests now live in the prompt module (src/prompt/requests.ts); re-exported for the editors. */
export * from "../prompt/requests.ts";
