// shieldgemma2 — ShieldGemma 2, Google's image-safety classifier built on Gemma 3 4B: is this image
// in violation of a policy? P(violation) comes from two logits of one forward pass.
//
//   shieldgemma2 MODEL_DIR IMAGE [POLICY ...]    POLICY: dangerous | sexual | violence (all)
//
// The recipe, from the model card (huggingface.co/google/shieldgemma-2-4b-it, "Inputs and outputs")
// and transformers' implementation (src/transformers/models/shieldgemma2/):
//   * the prompt: the image, followed by the card's prompt instruction with one policy definition
//     filled in, as a user turn of the Gemma 3 chat format; the model's answer starts right after
//     "<start_of_turn>model\n". The technical report (arXiv:2504.01081, Fig. 2) says the same: "the
//     input to SG2 consists of the image followed by the prompt instruction";
//   * the policies: the three definitions of the card, word for word as in transformers'
//     DEFAULT_SHIELDGEMMA2_POLICIES (processing_shieldgemma2.py);
//   * the score: "Output: Probability of 'Yes'/'No' tokens ... 'Yes' means that the image violated
//     the policy". modeling_shieldgemma2.py computes it as
//         selected_logits = logits[:, -1, [yes_token_index, no_token_index]]
//         probabilities   = softmax(selected_logits, dim=-1)
//     with yes_token_index = 10784 and no_token_index = 3771, the pieces "Yes" and "No"; so
//         P(violation) = exp(z_Yes) / (exp(z_Yes) + exp(z_No)) = probabilities[0].
//     (That file's docstring suggests probabilities[:, 1] for the violative condition,
//     contradicting its own previous sentence and the card; we follow the card: Yes = violation.)
// Differences from transformers' processor, on purpose: its chat template (the _CHAT_TEMPLATE of
// convert_shieldgemma2_weights_orbax_to_hf.py) opens a "<start_of_turn>user\n" before EACH content
// item, so the image and the instruction land in two user turns; the card and the report describe
// one turn holding the image then the instruction, which is what this program renders. Some copies
// of the card say "must start with with 'Yes'"; the template, the report and ai.google.dev's copy
// say "start with".
//
// The published checkpoint's config.json says model_type "shieldgemma2"; this library reads a
// Gemma 3 ("gemma3") checkpoint of the same architecture. CI runs this on `gemma3 synth --preset
// tiny-mm`, a tiny checkpoint in the 4B layout with random weights: its probabilities mean nothing.
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gemma3/gemma3.hpp>

namespace {

// transformers DEFAULT_SHIELDGEMMA2_POLICIES = the model card's three policies.
const std::map<std::string, std::string> kPolicies = {
    {"dangerous",
     "No Dangerous Content: The image shall not contain content that facilitates or encourages "
     "activities that "
     "could cause real-world harm (e.g., building firearms and explosive devices, promotion of "
     "terrorism, "
     "instructions for suicide)."},
    {"sexual",
     "No Sexually Explicit content: The image shall not contain content that depicts explicit or "
     "graphic sexual "
     "acts (e.g., pornography, erotic nudity, depictions of rape or sexual assault)."},
    {"violence",
     "No Violence/Gore content: The image shall not contain content that depicts shocking, "
     "sensational, or "
     "gratuitous violence (e.g., excessive blood and gore, gratuitous violence against animals, "
     "extreme injury "
     "or moment of death)."},
};

// The model card's prompt instruction around one policy.
std::string instruction(const std::string& policy) {
  return "You are a policy expert trying to help determine whether a generated or real image is in "
         "violation "
         "of the safety policy below. Your decision must very clearly follow the specific language "
         "used in the "
         "safety policy and should not include any interpretation outside of the safety policy.\n\n"
         "<BEGIN_SAFETY_POLICY>\n" +
         policy +
         "\n</END_SAFETY_POLICY>\n\n"
         "Does the image violate the above policy? Your Answer must start with 'Yes' or 'No'.";
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 3) {
    std::fprintf(stderr, "usage: shieldgemma2 MODEL_DIR IMAGE [dangerous|sexual|violence ...]\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::vector<std::string> policies(argv + 3, argv + argc);
  if (policies.empty()) policies = {"dangerous", "sexual", "violence"};

  const auto checkpoint = gemma3::Checkpoint::open(dir);
  const gemma3::Gemma3<float> model(checkpoint);
  const gemma3::Tokenizer tokenizer(dir / "tokenizer.model");
  const int32_t yes = tokenizer.id_of("Yes"),
                no = tokenizer.id_of("No");  // 10784, 3771 in Gemma 3's vocabulary
  if (yes != 10784 || no != 3771)
    std::fprintf(stderr,
                 "note: Yes/No are %d/%d here, ShieldGemma2Config's defaults are 10784/3771\n", yes,
                 no);

  // The image is encoded once and reused for every policy. ShieldGemma 2 turns pan & scan off: the
  // whole image, resized to image_size, is the only crop.
  const gemma3::Image image = gemma3::load_image(argv[2]);
  const gemma3::ImageEmbeddings<float> soft{model.encode(model.pixel_values(image).front())};

  std::printf("%-10s %10s %10s %14s\n", "policy", "logit Yes", "logit No", "P(violation)");
  for (const std::string& name : policies) {
    const auto policy = kPolicies.find(name);
    if (policy == kPolicies.end())
      throw gemma3::InvalidArgument("policy", "unknown policy '" + name + "'");
    gemma3::Conversation chat;
    chat.user(
        {gemma3::ContentPart::Image(), gemma3::ContentPart::Text(instruction(policy->second))});
    const std::vector<int32_t> ids = chat.render_ids(tokenizer, model.config().mm_tokens_per_image);

    // Only the last position's logits: the distribution of the answer's first token.
    const gemma3::Mat<float> logits = model.forward(ids, soft, gemma3::LogitRows::last());

    // softmax over the two selected logits, computed stably; index 0 = Yes = violation.
    const double z_yes = logits(0, yes), z_no = logits(0, no);
    const double p_yes = 1.0 / (1.0 + std::exp(z_no - z_yes));
    std::printf("%-10s %10.4f %10.4f %14.6f\n", name.c_str(), z_yes, z_no, p_yes);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "shieldgemma2: %s\n", e.what());
  return 1;
}
