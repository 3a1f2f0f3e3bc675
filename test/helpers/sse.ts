/** Reads a server-sent events body into parsed `data:` payloads. */
export async function readEvents(body: AsyncIterable<Buffer | string>): Promise<unknown[]> {
  let text = ''
  for await (const chunk of body) text += chunk.toString()
  return parseEvents(text)
}

export function parseEvents(text: string): unknown[] {
  return text
    .split('\n\n')
    .map((block) => block.trim())
    .filter((block) => block.startsWith('data:'))
    .map((block) => {
      const data = block.slice('data:'.length).trim()
      return data === '[DONE]' ? data : (JSON.parse(data) as unknown)
    })
}
