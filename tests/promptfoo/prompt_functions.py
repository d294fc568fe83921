"Python prompt functions for python.yaml: promptfoo calls them with {vars, provider, config}."


def as_text(context):
    return "In one line, about {{topic}}: " + context["vars"]["topic"].upper()


def as_chat(context):
    return [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Tell me about " + context["vars"]["topic"]}]
