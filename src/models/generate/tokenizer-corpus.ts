/**
 * The text the generated tokenizers learn their first merges from: plain,
 * simple English in the style of TinyStories, written for this project. Small
 * on purpose; the merges only have to make English encode to fewer tokens
 * than bytes, not to be good.
 */
export const TOKENIZER_CORPUS = `Once upon a time, there was a dog. The dog was named Max and he lived in a little house with a red door. Every day, Max liked to play in the park with his friend Lily. Lily was a happy girl who loved to run and jump.
One day, Lily and Max went to the park. The sun was warm and the sky was blue. They saw a big tree with green leaves. "Let's play under the tree!" said Lily. Max wagged his tail and barked. They played with a ball and ran around the tree.
Then Max saw a little bird on the ground. The bird was sad because it could not fly. Lily picked up the bird and said, "Don't be sad, little bird. We will help you." She took the bird home and gave it some water and seeds.
The next day, the bird felt better. It sang a pretty song and flew up into the sky. Lily and Max were very happy. They waved at the bird and said goodbye. From that day on, the bird came back to visit them every morning.
Once there was a girl named Sue. She had a small cat that liked to sleep in the sun. One morning, the cat was gone. Sue looked in the garden and under the bed, but she could not find it. She asked her mom, "Where is my cat?" Her mom smiled and said, "Look in the box by the window." Sue ran to the box and found her cat sleeping there. She hugged the cat and laughed.
Tom was a boy who wanted to build a boat. He found some wood and a rope. He worked all day, and when he was done, he put the boat in the pond. The boat did not sink! Tom was proud of his boat. He showed it to his friends, and they all wanted to play with it. They took turns and shared the boat, and everyone had a good time.
The moral of the story is that it is good to help others and to share with your friends.`
